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

#[derive(Default)]
pub struct Pause {
    /// 0: no pause; else a `PauseMode`.
    mode: AtomicU8,
    /// When the pause ends (Unix ms).
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
        let now_active = self.active() && unix_ms() < self.until_ms.load(Ordering::Acquire);
        if now_active {
            self.until_ms.fetch_max(until_ms, Ordering::AcqRel);
            self.mode.fetch_max(mode as u8, Ordering::AcqRel);
        } else {
            self.until_ms.store(until_ms, Ordering::Release);
            self.mode.store(mode as u8, Ordering::Release);
        }
        warpengine_storage::db::pause_expiry_deletes_until(self.until_ms.load(Ordering::Acquire));
    }

    /// Whether a pause of either mode is in force now: active expiry waits during one, as in
    /// Redis (so that a paused primary's data does not change under its replicas).
    pub fn in_force(&self) -> bool {
        self.active() && unix_ms() < self.until_ms.load(Ordering::Acquire)
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        self.mode.store(0, Ordering::Release);
        warpengine_storage::db::pause_expiry_deletes_until(0);
        self.released.notify_waiters();
    }

    /// Whether a request is held now: `writes` says whether it writes or may replicate
    /// ([`writes`]).
    pub fn holds(&self, writes: bool) -> bool {
        let mode = self.mode.load(Ordering::Acquire);
        if mode == 0 {
            return false;
        }
        if unix_ms() >= self.until_ms.load(Ordering::Acquire) {
            self.unpause();
            return false;
        }
        mode == PauseMode::All as u8 || writes
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
            let left = self
                .until_ms
                .load(Ordering::Acquire)
                .saturating_sub(unix_ms());
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
