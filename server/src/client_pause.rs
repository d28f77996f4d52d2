//! CLIENT PAUSE: while a pause lasts, the requests it covers wait, in order, before they run
//! (WRITE: commands that write or may replicate, PUBLISH included, and EXEC of a transaction
//! that writes; ALL: every command), and run once CLIENT UNPAUSE or the timeout ends it. A
//! waiting client counts in INFO's blocked_clients, as Redis counts it. Expiry waits too: the
//! active cycle does not run, and a read of an expired key finds it absent but leaves it there
//! (`warpengine_storage::db::pause_expiry_deletes_until`), as in Redis.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crate::command_table::{CommandSpec, Flags};
use crate::server_state::unix_ms;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum PauseMode {
    Write = 1,
    All = 2,
}

/// FAILOVER's hold on writes, kept apart from CLIENT PAUSE's (CLIENT UNPAUSE and the pause's
/// timeout leave it, as Redis keeps one pause per purpose). A bit of `mode`, so that `active`
/// stays one load.
const FAILOVER: u8 = 4;
/// A shutdown's hold on writes while it waits for lagging replicas (`crate::shutdown`).
const SHUTDOWN: u8 = 8;
/// The holds that have no end of their own: they are released.
const HOLDS: u8 = FAILOVER | SHUTDOWN;

/// CLIENT PAUSE's mode, in `mode`'s low bits.
const CLIENT: u8 = 3;

#[derive(Default)]
pub struct Pause {
    /// CLIENT PAUSE's `PauseMode` (0: none), or'ed with the `HOLDS` in force.
    mode: AtomicU8,
    /// When CLIENT PAUSE's pause ends (Unix ms).
    until_ms: AtomicU64,
    released: tokio::sync::Notify,
}

impl Pause {
    /// Whether a pause may be in force (one load per request while none is).
    #[inline]
    pub fn active(&self) -> bool {
        self.mode.load(Ordering::Acquire) != 0
    }

    /// CLIENT PAUSE: as Redis's pauseClients, a new pause never shortens or weakens the one in
    /// force: the later end and the stronger mode win.
    pub fn pause(&self, mode: PauseMode, until_ms: u64) {
        let client = self.mode.load(Ordering::Acquire) & CLIENT;
        let now_active = client != 0 && unix_ms() < self.until_ms.load(Ordering::Acquire);
        if now_active {
            self.until_ms.fetch_max(until_ms, Ordering::AcqRel);
        } else {
            self.until_ms.store(until_ms, Ordering::Release);
        }
        let _ = self
            .mode
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                let kept = if now_active { m & CLIENT } else { 0 };
                Some((m & HOLDS) | kept.max(mode as u8))
            });
        self.pause_expiry();
    }

    /// Whether a pause of either mode is in force now: active expiry waits during one, as in
    /// Redis (so that a paused primary's data does not change under its replicas).
    pub fn in_force(&self) -> bool {
        let mode = self.mode.load(Ordering::Acquire);
        mode & HOLDS != 0 || (mode != 0 && unix_ms() < self.until_ms.load(Ordering::Acquire))
    }

    /// CLIENT UNPAUSE (FAILOVER's and a shutdown's holds stay).
    pub fn unpause(&self) {
        self.mode.fetch_and(HOLDS, Ordering::AcqRel);
        self.pause_expiry();
        self.released.notify_waiters();
    }

    /// FAILOVER holds writes (and expiry) while it waits for its target and hands over, until
    /// it ends or is aborted.
    pub fn hold_writes_for_failover(&self, hold: bool) {
        self.hold_writes(FAILOVER, hold);
    }

    /// Whether FAILOVER holds writes now.
    pub fn held_for_failover(&self) -> bool {
        self.mode.load(Ordering::Acquire) & FAILOVER != 0
    }

    /// A shutdown holds writes (and expiry) while it waits for lagging replicas, until it
    /// stops the server or is aborted (Redis's PAUSE_DURING_SHUTDOWN).
    pub fn hold_writes_for_shutdown(&self, hold: bool) {
        self.hold_writes(SHUTDOWN, hold);
    }

    fn hold_writes(&self, purpose: u8, hold: bool) {
        if hold {
            self.mode.fetch_or(purpose, Ordering::AcqRel);
        } else {
            self.mode.fetch_and(!purpose, Ordering::AcqRel);
        }
        self.pause_expiry();
        self.released.notify_waiters();
    }

    /// Expired keys stay while a pause is in force (deleting them would write).
    fn pause_expiry(&self) {
        let mode = self.mode.load(Ordering::Acquire);
        let until = if mode & HOLDS != 0 {
            u64::MAX
        } else if mode != 0 {
            self.until_ms.load(Ordering::Acquire)
        } else {
            0
        };
        warpengine_storage::db::pause_expiry_deletes_until(until);
    }

    /// Whether a request is held now: `writes` says whether it writes or may replicate
    /// ([`writes`]).
    pub fn holds(&self, writes: bool) -> bool {
        let mut mode = self.mode.load(Ordering::Acquire);
        if mode == 0 {
            return false;
        }
        if mode & CLIENT != 0 && unix_ms() >= self.until_ms.load(Ordering::Acquire) {
            self.unpause();
            mode &= HOLDS;
        }
        mode & CLIENT == PauseMode::All as u8 || (mode != 0 && writes)
    }

    /// Waits until the pause no longer holds a request that `writes` (or not).
    pub async fn wait(&self, writes: bool) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.holds(writes) {
                return;
            }
            // (The holds have no end of their own: they are released.)
            let left = if self.mode.load(Ordering::Acquire) & CLIENT != 0 {
                self.until_ms
                    .load(Ordering::Acquire)
                    .saturating_sub(unix_ms())
            } else {
                60_000
            };
            tokio::select! {
                _ = released => {}
                _ = tokio::time::sleep(Duration::from_millis(left.max(1))) => {}
            }
        }
    }
}

/// Whether a pause in WRITE mode holds a request: the command writes or may replicate, or it is
/// the EXEC of a transaction that does (`transaction_writes`).
pub fn writes(spec: &CommandSpec, transaction_writes: bool) -> bool {
    spec.flags.contains(Flags::WRITE)
        || spec.flags.contains(Flags::MAY_REPLICATE)
        || transaction_writes
}
