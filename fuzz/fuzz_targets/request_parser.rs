//! The request parser (RESP multibulk and inline) fed in random chunkings: every input must keep
//! the contract in `warpengine::protocol::parse_properties` (progress, bounded allocation, the
//! same requests whatever the chunking). Allocations are counted by the global allocator below.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use warpengine::protocol::parse_properties::{check, AllocationMeter, Feed};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Old and new blocks may both be live during the copy.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Meter;

impl AllocationMeter for Meter {
    fn live(&self) -> usize {
        LIVE.load(Ordering::Relaxed)
    }
    fn take_peak(&self) -> usize {
        PEAK.swap(LIVE.load(Ordering::Relaxed), Ordering::Relaxed)
    }
}

fuzz_target!(|data: &[u8]| {
    check(&Feed::decode(data), &Meter);
});
