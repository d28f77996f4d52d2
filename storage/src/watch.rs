//! WATCH's bookkeeping in a database: which keys clients watch, and a flag per client that a
//! change to any of its keys sets (Redis's `watched_keys` and `CLIENT_DIRTY_CAS`). The database
//! sets the flags itself where keys are stored, removed (deletion, expiry, eviction), given an
//! expiry, flushed or swapped; the dispatcher adds the keys of every write command, which
//! covers changes made in place (INCR, LPUSH on an existing list, ...).
//!
//! Keys that were already expired when watched ("stale") follow Redis 7.0: their deletion is no
//! change; being written again is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::key::Key;

/// One client's "a watched key changed" flag, shared by every key it watches.
#[derive(Default, Debug)]
pub struct WatchFlag(AtomicBool);

impl WatchFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }
}

struct Watcher {
    flag: Arc<WatchFlag>,
    /// The key existed but had expired when it was watched.
    stale: bool,
}

/// The watched keys of one database.
#[derive(Default)]
pub struct Watchers {
    by_key: HashMap<Key, Vec<Watcher>>,
}

impl Watchers {
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub(crate) fn add(&mut self, key: &[u8], flag: &Arc<WatchFlag>, stale: bool) {
        let list = self.by_key.entry(Key::from_slice(key)).or_default();
        if !list.iter().any(|w| Arc::ptr_eq(&w.flag, flag)) {
            list.push(Watcher {
                flag: flag.clone(),
                stale,
            });
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8], flag: &Arc<WatchFlag>) {
        if let Some(list) = self.by_key.get_mut(key) {
            list.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            if list.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Whether `flag`'s client watched `key` while it was live.
    pub(crate) fn watched_live(&self, key: &[u8], flag: &Arc<WatchFlag>) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|list| list.iter().any(|w| Arc::ptr_eq(&w.flag, flag) && !w.stale))
    }

    /// `key` was written or removed; `exists`: whether it is there now.
    pub(crate) fn touch(&mut self, key: &[u8], exists: bool) {
        let Some(list) = self.by_key.get_mut(key) else {
            return;
        };
        for w in list {
            if w.stale && !exists {
                // An expired key deleted: logically nothing changed.
                w.stale = false;
                continue;
            }
            w.flag.set();
        }
    }

    /// The database was emptied (FLUSHDB) or swapped: `in_old(key)` tells whether the key was
    /// in the contents it had; `in_new(key)` whether it is in what it holds now, and if so
    /// whether it is expired there (Redis's `touchAllWatchedKeysInDb`).
    pub(crate) fn touch_all(
        &mut self,
        in_old: impl Fn(&[u8]) -> bool,
        in_new: impl Fn(&[u8]) -> Option<bool>,
    ) {
        for (key, list) in self.by_key.iter_mut() {
            let key = key.as_bytes();
            let was = in_old(key);
            let now = in_new(key);
            if !was && now.is_none() {
                continue;
            }
            for w in list.iter_mut() {
                match now {
                    None if w.stale => {
                        w.stale = false;
                        continue;
                    }
                    Some(true) if w.stale => continue,
                    Some(true) if !was => {
                        // Nothing there before, an expired key now: still nothing.
                        w.stale = true;
                        continue;
                    }
                    _ => w.flag.set(),
                }
            }
        }
    }
}
