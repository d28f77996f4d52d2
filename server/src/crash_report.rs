//! Redis's crash report: when a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, the
//! last also from an abort: an allocation failure, DEBUG SEGFAULT) ends the process, the signal
//! and the stack of the thread it hit go to the log first, where an operator (and Redis's
//! test harness, which looks for "STACK TRACE") finds them beside the server's other lines.
//!
//! The report is not async-signal-safe (it formats, allocates and takes the log's lock), as
//! Redis's own is not: the process is going down anyway. So that a report that cannot finish
//! (a second fault, a lock the crashed thread held) never keeps a dead server alive, SIGALRM's
//! default action ends it five seconds later whatever happens. The handler runs on the
//! thread's own stack: a thread that overflowed its stack has none left and dies of the
//! SIGSEGV without a report.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// `crash-log-enabled`: off, the process dies of the signal without a report.
static ENABLED: AtomicBool = AtomicBool::new(true);

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

/// Installs the report for every fatal signal (at start, before the workers).
pub fn install() {
    for sig in FATAL {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler has the
        // SA_SIGINFO signature; SA_RESETHAND puts the default action back for the re-raise.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                on_fatal_signal;
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_fatal_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    if ENABLED.load(Ordering::Relaxed) {
        report(sig, info);
    }
    // SA_RESETHAND restored the default action: the process ends by the same signal (and
    // leaves a core where the system keeps them).
    // SAFETY: raise has no preconditions.
    unsafe { libc::raise(sig) };
}

fn report(sig: libc::c_int, info: *mut libc::siginfo_t) {
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(5) };
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    tracing::error!(
        "WarpEngine {} crashed by signal: {sig} ({}), si_code: {code}",
        env!("CARGO_PKG_VERSION"),
        signal_name(sig)
    );
    if matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL
    ) {
        tracing::error!("Accessing address: {addr:#x}");
    }
    let trace = std::backtrace::Backtrace::force_capture();
    tracing::error!("------ STACK TRACE ------\nBacktrace of thread {name}:\n{trace}");
    tracing::error!("------ END OF CRASH REPORT ------");
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}
