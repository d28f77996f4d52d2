//! The write-ahead log of one server: per shard, a chain of log segments, optionally preceded
//! by a snapshot. Knows records and files, not commands: payloads are opaque bytes.
//!
//! Files in the log directory:
//! - `MANIFEST`: `shards N` and `snapshot S`, replaced atomically (write, fsync, rename).
//! - `snap-S-I`: shard I's state when segment S began (absent when S is 0).
//! - `log-G-I`: shard I's records from segment G on, for every G >= S.
//!
//! Recovery loads each shard's snapshot S and replays its segments S, S+1, ... in order.

pub mod record;
pub mod writer;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use record::{Damage, Reader, Record};
pub use writer::{open_append, Backend, Syncer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    pub shards: usize,
    /// The segment the snapshots were taken at; 0 when there are none.
    pub snapshot: u64,
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

pub fn log_path(dir: &Path, segment: u64, shard: usize) -> PathBuf {
    dir.join(format!("log-{segment}-{shard}"))
}

pub fn snapshot_path(dir: &Path, segment: u64, shard: usize) -> PathBuf {
    dir.join(format!("snap-{segment}-{shard}"))
}

pub fn read_manifest(dir: &Path) -> io::Result<Option<Manifest>> {
    let text = match fs::read_to_string(manifest_path(dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut shards = None;
    let mut snapshot = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().and_then(|v| v.parse().ok())) {
            (Some("shards"), Some(n)) => shards = Some(n as usize),
            (Some("snapshot"), Some(s)) => snapshot = Some(s),
            _ => {}
        }
    }
    match (shards, snapshot) {
        (Some(shards), Some(snapshot)) if shards > 0 => Ok(Some(Manifest { shards, snapshot })),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a valid manifest", manifest_path(dir).display()),
        )),
    }
}

/// Replaces the manifest atomically: a crash leaves either the old one or the new one.
pub fn write_manifest(dir: &Path, m: &Manifest) -> io::Result<()> {
    let tmp = dir.join("MANIFEST.tmp");
    let mut f = File::create(&tmp)?;
    writeln!(f, "shards {}\nsnapshot {}", m.shards, m.snapshot)?;
    f.sync_all()?;
    fs::rename(&tmp, manifest_path(dir))?;
    sync_dir(dir)
}

/// Makes renames and file creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log segments present for `shard` at or after `from`, in order.
pub fn segments(dir: &Path, shard: usize, from: u64) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("log-") else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(seg), Some(sh), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(seg), Ok(sh)) = (seg.parse::<u64>(), sh.parse::<usize>()) {
            if sh == shard && seg >= from {
                out.push(seg);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The highest segment number of any log or snapshot file in `dir` (0 if none).
pub fn last_segment(dir: &Path) -> io::Result<u64> {
    let mut last = 0;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let rest = name
            .strip_prefix("log-")
            .or_else(|| name.strip_prefix("snap-"));
        if let Some(seg) = rest
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<u64>().ok())
        {
            last = last.max(seg);
        }
    }
    Ok(last)
}

/// Deletes logs and snapshots older than segment `keep_from` (and, when `shards` is given,
/// those of shards at or beyond it): what a newer snapshot has made redundant.
pub fn remove_before(dir: &Path, keep_from: u64, shards: Option<usize>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix("log-")
            .or_else(|| name.strip_prefix("snap-"))
        else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(Ok(seg)), Some(Ok(shard))) = (
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<usize>),
        ) else {
            continue;
        };
        if seg < keep_from || shards.is_some_and(|n| shard >= n) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_segment_listing() {
        let dir = std::env::temp_dir().join(format!("warp-wal-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_manifest(&dir).unwrap(), None);
        let m = Manifest {
            shards: 3,
            snapshot: 4,
        };
        write_manifest(&dir, &m).unwrap();
        assert_eq!(read_manifest(&dir).unwrap(), Some(m));
        for (seg, shard) in [(2, 0), (4, 0), (5, 0), (4, 1), (10, 2)] {
            File::create(log_path(&dir, seg, shard)).unwrap();
        }
        File::create(snapshot_path(&dir, 4, 0)).unwrap();
        assert_eq!(segments(&dir, 0, 4).unwrap(), vec![4, 5]);
        assert_eq!(last_segment(&dir).unwrap(), 10);
        remove_before(&dir, 4, Some(2)).unwrap();
        assert!(!log_path(&dir, 2, 0).exists());
        assert!(!log_path(&dir, 10, 2).exists());
        assert!(log_path(&dir, 4, 1).exists());
        assert!(snapshot_path(&dir, 4, 0).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
