//! Memory accounting: the global allocator counts the bytes it hands out (mimalloc's usable
//! size, so size-class rounding counts as Redis's zmalloc counts it), per thread without
//! contention; `used_memory` is their sum. This is what maxmemory is enforced against.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use libmimalloc_sys as mi;

// mimalloc's extended API (in the linked library; the crate declares it behind a feature).
extern "C" {
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_collect(force: bool);
}

const SLOTS: usize = 64;

/// One counter per thread, each on its own cache line; the last is shared by any threads
/// beyond the others (added to atomically).
#[repr(align(64))]
struct Slot(AtomicI64);

static COUNTERS: [Slot; SLOTS] = [const { Slot(AtomicI64::new(0)) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn slot() -> usize {
    MY_SLOT
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed).min(SLOTS - 1);
                s.set(i);
            }
            i
        })
        .unwrap_or(SLOTS - 1)
}

#[inline]
fn count(delta: i64) {
    let i = slot();
    let c = &COUNTERS[i].0;
    if i < SLOTS - 1 {
        // Only this thread writes its own slot: a plain load and store suffices.
        c.store(c.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    } else {
        c.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Bytes currently allocated by the whole process through the global allocator.
pub fn allocated() -> u64 {
    COUNTERS
        .iter()
        .map(|s| s.0.load(Ordering::Relaxed))
        .sum::<i64>()
        .max(0) as u64
}

/// mimalloc, called directly, counting what it hands out. The `mimalloc` crate's allocator
/// takes mimalloc's aligned entry points for every request, whose generic path cost about 190
/// instructions per SET/GET (callgrind, issue 14); plain `mi_malloc` already aligns to 16 bytes
/// (and to the size below that), so the aligned calls are kept for what needs more.
pub struct CountingMimalloc;

/// mimalloc's own alignment guarantee (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

#[inline]
fn plain(layout: &Layout) -> bool {
    layout.align() <= PLAIN_ALIGN && layout.align() <= layout.size()
}

unsafe impl GlobalAlloc for CountingMimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = if plain(&layout) {
            mi::mi_malloc(layout.size())
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align())
        };
        if !p.is_null() {
            count(mi_usable_size(p) as i64);
        }
        p.cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = if plain(&layout) {
            mi::mi_zalloc(layout.size())
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align())
        };
        if !p.is_null() {
            count(mi_usable_size(p) as i64);
        }
        p.cast()
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        count(-(mi_usable_size(p.cast()) as i64));
        mi::mi_free(p.cast());
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = mi_usable_size(p.cast()) as i64;
        let q = if layout.align() <= PLAIN_ALIGN && layout.align() <= new_size {
            mi::mi_realloc(p.cast(), new_size)
        } else {
            mi::mi_realloc_aligned(p.cast(), new_size, layout.align())
        };
        if !q.is_null() {
            count(mi_usable_size(q) as i64 - old);
        }
        q.cast()
    }
}

/// Set by the binary that installs [`CountingMimalloc`] as its global allocator (a library's
/// unit tests run on the system's, where mimalloc cannot be asked about a pointer).
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Called by `main` with [`CountingMimalloc`] as the global allocator.
pub fn mark_in_use() {
    IN_USE.store(true, Ordering::Relaxed);
}

/// What `v`'s buffer takes in used_memory: the allocator's usable size, which for a large
/// buffer can be megabytes past its capacity (mimalloc rounds huge blocks up), or the
/// capacity when the allocator cannot be asked.
pub fn allocation_size<T>(v: &Vec<T>) -> usize {
    let capacity = v.capacity() * std::mem::size_of::<T>();
    if capacity == 0 || !IN_USE.load(Ordering::Relaxed) {
        return capacity;
    }
    // SAFETY: a live allocation of the global allocator, which is mimalloc (IN_USE).
    unsafe { mi_usable_size(v.as_ptr().cast()) }
}

static PEAK: AtomicI64 = AtomicI64::new(0);

/// Records `used` as a candidate peak; returns the peak so far.
pub fn note_peak(used: u64) -> u64 {
    PEAK.fetch_max(used as i64, Ordering::Relaxed)
        .max(used as i64) as u64
}

/// Runs `f` and returns what it allocated net on this thread (exact on a thread with a counter
/// of its own, as every worker has).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, i64) {
    let c = &COUNTERS[slot()].0;
    let before = c.load(Ordering::Relaxed);
    let out = f();
    (out, c.load(Ordering::Relaxed) - before)
}

static STARTUP: AtomicI64 = AtomicI64::new(0);

/// Records what the server allocated before loading any data (MEMORY STATS startup.allocated).
pub fn mark_startup() {
    STARTUP.store(allocated() as i64, Ordering::Relaxed);
}

pub fn startup() -> u64 {
    STARTUP.load(Ordering::Relaxed).max(0) as u64
}

/// Lets mimalloc return the memory this thread freed to the OS. Its delayed purges otherwise run
/// only on later allocator calls, and the non-forced collect leaves arena pages alone, so a
/// worker that went quiet kept freed pages resident (old table copies after growth). Called
/// from each worker's periodic tick.
pub fn release_freed() {
    // SAFETY: mi_collect only walks and trims the calling thread's own heap and the arenas.
    unsafe { mi_collect(true) }
}

/// Asks the kernel for no transparent huge pages in this process. mimalloc advises them for its
/// segments, and a 2 MB page made resident by a few touched bytes breaks the relation between
/// what is allocated and what is resident (used_memory against RSS: 0.65-0.76 after 50,000 keys
/// with them, 0.99 without). Throughput did not move measurably either way.
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and only sets a process flag.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            "prctl(PR_SET_THP_DISABLE) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

/// The machine's memory in bytes, from /proc/meminfo (0 when unknown).
pub fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}
