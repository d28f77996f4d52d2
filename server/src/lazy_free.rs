//! Freeing large values off the workers' threads, as Redis's lazyfree does: UNLINK (and DEL
//! with `lazyfree-lazy-user-del yes`) take the key out of its database at once and hand a value
//! whose freeing is real work (more than [`THRESHOLD`] allocations, by
//! [`Value::free_effort`](warpengine_storage::value::Value::free_effort)) to one background
//! thread, started on first use. INFO's `lazyfree_pending_objects` and `lazyfreed_objects`
//! count them (the second cleared by CONFIG RESETSTAT, as Redis's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;

use warpengine_storage::db::Entry;

/// Redis's LAZYFREE_THRESHOLD: values that take more allocations than this are freed in the
/// background.
pub const THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// Drops `entry` here, or on the background thread when its freeing is real work.
pub fn free(entry: Entry) {
    if entry.value.free_effort() <= THRESHOLD {
        return;
    }
    PENDING.fetch_add(1, Ordering::Relaxed);
    let sent = match freer() {
        Some(tx) => tx.send(entry),
        None => Err(mpsc::SendError(entry)),
    };
    if let Err(mpsc::SendError(entry)) = sent {
        // No background thread (it could not be started): freed here after all.
        drop(entry);
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Values handed over and not freed yet (INFO's `lazyfree_pending_objects`).
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Values the background thread freed (INFO's `lazyfreed_objects`).
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}

fn freer() -> Option<&'static mpsc::Sender<Entry>> {
    static FREER: OnceLock<Option<mpsc::Sender<Entry>>> = OnceLock::new();
    FREER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Entry>();
            let started = std::thread::Builder::new()
                .name("warp-lazyfree".into())
                .spawn(move || {
                    for entry in rx {
                        drop(entry);
                        FREED.fetch_add(1, Ordering::Relaxed);
                        PENDING.fetch_sub(1, Ordering::Relaxed);
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!("cannot start the lazy-free thread, freeing in place: {e}");
                    None
                }
            }
        })
        .as_ref()
}
