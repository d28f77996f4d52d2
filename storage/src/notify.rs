//! Keyspace notifications (`notify-keyspace-events`): which classes of event are on, and the
//! events raised on this thread that the server has not published yet.
//!
//! Commands raise their own events (`lpush`, `hset`, ...); the database raises the ones that
//! happen below any command: `new` when a key is created and `expired` when expiry removes one.
//! Events wait in a per-thread queue because the database cannot publish (Pub/Sub lives in the
//! server, above it); the server takes them after each command and each expiry or eviction
//! round, on the thread that raised them, so they keep their order.
//!
//! The enabled classes are process-wide, as Redis's `server.notify_keyspace_events` is: the
//! database consults them at every key creation and expiry without a handle on the server.
//! While they are 0 (the default) raising an event costs one relaxed load.
//!
//! Client-side caching needs to hear of keys removed by expiry and eviction whatever the
//! classes say: while it is on ([`set_removals_wanted`]) those events are queued too, marked
//! as not to be published.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::key::Key;

/// Redis's `NOTIFY_*` bits.
pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// The `A` alias: every class but key-miss and new.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Not a Redis class: expired and evicted keys are wanted (by client tracking).
const REMOVALS: u32 = 1 << 31;

static ENABLED: AtomicU32 = AtomicU32::new(0);

/// Sets the enabled classes (from `notify-keyspace-events`).
pub fn set_enabled(flags: u32) {
    let removals = ENABLED.load(Ordering::Relaxed) & REMOVALS;
    ENABLED.store((flags & !REMOVALS) | removals, Ordering::Relaxed);
}

/// Whether expired and evicted keys are queued even when their classes are off.
pub fn set_removals_wanted(on: bool) {
    if on {
        ENABLED.fetch_or(REMOVALS, Ordering::Relaxed);
    } else {
        ENABLED.fetch_and(!REMOVALS, Ordering::Relaxed);
    }
}

/// Whether any event may be queued (notifications or tracking on): the server's check after
/// each command.
#[inline]
pub fn active() -> bool {
    ENABLED.load(Ordering::Relaxed) != 0
}

/// Which of the two channel families are on.
#[inline]
pub fn channels() -> u32 {
    ENABLED.load(Ordering::Relaxed) & (KEYSPACE | KEYEVENT)
}

/// One event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub event: &'static str,
    pub db: usize,
    pub key: Key,
    /// Its class is on (false: queued only because removals are wanted).
    pub publish: bool,
    /// The key was removed by expiry or eviction.
    pub removal: bool,
}

thread_local! {
    static PENDING: RefCell<Vec<KeyEvent>> = const { RefCell::new(Vec::new()) };
}

/// Raises `event` on `key` in database `db`, if `class` is enabled (or, for an expired or
/// evicted key, if removals are wanted).
#[inline]
pub fn raise(class: u32, event: &'static str, db: usize, key: &[u8]) {
    let on = ENABLED.load(Ordering::Relaxed);
    if on & (class | REMOVALS) != 0 {
        raise_now(on, class, event, db, key);
    }
}

#[inline(never)]
fn raise_now(on: u32, class: u32, event: &'static str, db: usize, key: &[u8]) {
    let publish = on & class != 0 && on & (KEYSPACE | KEYEVENT) != 0;
    let removal = class & (EXPIRED | EVICTED) != 0;
    let wanted = removal && on & REMOVALS != 0;
    if !(publish || wanted) {
        return;
    }
    PENDING.with(|p| {
        p.borrow_mut().push(KeyEvent {
            event,
            db,
            key: Key::from_slice(key),
            publish,
            removal,
        })
    });
}

/// Takes the events raised on this thread so far, oldest first.
pub fn take() -> Vec<KeyEvent> {
    PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Whether events wait on this thread.
pub fn pending() -> bool {
    PENDING.with(|p| !p.borrow().is_empty())
}

/// Parses a `notify-keyspace-events` value into flags (Redis's
/// `keyspaceEventsStringToFlags`); None for an unknown character.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Flags back to the string CONFIG GET shows (Redis's `keyspaceEventsFlagsToString`, which
/// drops `n` when `A` is shown, as Redis 7.0 does).
pub fn format_flags(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_shows_them() {
        for (given, shown) in [
            ("KEA", "AKE"),
            ("AKEn", "AKE"),
            ("Kx", "xK"),
            ("KEAmn", "AKEm"),
            ("gn$E", "g$nE"),
            ("", ""),
        ] {
            assert_eq!(format_flags(parse_flags(given).unwrap()), shown, "{given}");
        }
        assert_eq!(parse_flags("Q"), None);
    }
}
