//! Scripts that run longer than `busy-reply-threshold` (alias `lua-time-limit`): once a
//! running script passes it (its interpreter's hook notices, every few thousand
//! instructions), the server is busy: other clients' commands get `-BUSY` until it ends, but
//! for the few Redis allows then (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN
//! NOSAVE ...). SCRIPT KILL and FUNCTION KILL stop such a script if it has not written yet;
//! the hook raises the error at its next check, and keeps raising it if the script catches it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::protocol::Reply;

/// A script past the threshold.
pub struct SlowRun {
    /// The function's name for FCALL, None for a script.
    pub function: Option<String>,
    /// The function's whole FCALL (or FCALL_RO) command, for FUNCTION STATS.
    pub command: Vec<String>,
    pub started: Instant,
    /// Whether it wrote (then it cannot be killed).
    pub wrote: AtomicBool,
    /// Set by SCRIPT KILL / FUNCTION KILL.
    pub kill: AtomicBool,
}

#[derive(Default)]
pub struct Busy {
    /// `busy-reply-threshold` in milliseconds (0: scripts never make the server busy).
    threshold_ms: AtomicU64,
    slow: Mutex<Vec<Arc<SlowRun>>>,
    /// How many scripts are past the threshold: read by every request's admission.
    count: AtomicUsize,
}

const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

impl Busy {
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Whether a script is past the threshold now.
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    pub fn register(&self, run: Arc<SlowRun>) {
        let mut slow = self.slow.lock().expect("busy lock");
        slow.push(run);
        self.count.store(slow.len(), Ordering::Relaxed);
    }

    pub fn unregister(&self, run: &Arc<SlowRun>) {
        let mut slow = self.slow.lock().expect("busy lock");
        slow.retain(|r| !Arc::ptr_eq(r, run));
        self.count.store(slow.len(), Ordering::Relaxed);
    }

    /// The error for a command refused while a script is busy.
    pub fn refusal(&self) -> Reply {
        let slow = self.slow.lock().expect("busy lock");
        let function = slow.first().is_some_and(|r| r.function.is_some());
        Reply::err(if function { BUSY_FUNCTION } else { BUSY_SCRIPT })
    }

    /// SCRIPT KILL (`functions` false) or FUNCTION KILL.
    pub fn kill(&self, functions: bool) -> Reply {
        let slow = self.slow.lock().expect("busy lock");
        if slow.is_empty() {
            return Reply::err("NOTBUSY No scripts in execution right now.");
        }
        if slow.iter().any(|r| r.wrote.load(Ordering::Relaxed)) {
            return Reply::err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
        }
        // SCRIPT KILL does not kill a function, nor FUNCTION KILL a script.
        if slow.iter().any(|r| r.function.is_some() != functions) {
            return Reply::err(if functions {
                BUSY_SCRIPT
            } else {
                BUSY_FUNCTION
            });
        }
        for r in slow.iter() {
            r.kill.store(true, Ordering::Relaxed);
        }
        crate::protocol::reply::OK
    }

    /// SHUTDOWN NOSAVE: stops every slow script, written or not.
    pub fn stop_all(&self) {
        for r in self.slow.lock().expect("busy lock").iter() {
            r.kill.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a slow script (not a function) runs: FUNCTION STATS answers -BUSY then.
    pub fn script_running(&self) -> bool {
        let slow = self.slow.lock().expect("busy lock");
        slow.iter().any(|r| r.function.is_none())
    }

    /// FUNCTION STATS' `running_script`: the slow function's name, command and milliseconds.
    pub fn running_function(&self) -> Option<(String, Vec<String>, u64)> {
        let slow = self.slow.lock().expect("busy lock");
        slow.iter().find_map(|r| {
            r.function.as_ref().map(|name| {
                (
                    name.clone(),
                    r.command.clone(),
                    r.started.elapsed().as_millis() as u64,
                )
            })
        })
    }
}
