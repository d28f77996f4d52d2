//! The request parser (RESP multibulk and inline) fed in random chunkings: every input must keep
//! the contract in `warpengine::protocol::parse_properties` (progress, bounded allocation, the
//! same requests whatever the chunking). Allocations are counted by the fuzz crate's `Counting`
//! allocator.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warpengine::protocol::parse_properties::{check, AllocationMeter, Feed};
use warpengine_fuzz::Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Meter;

impl AllocationMeter for Meter {
    fn live(&self) -> usize {
        warpengine_fuzz::live()
    }
    fn take_peak(&self) -> usize {
        warpengine_fuzz::take_peak()
    }
}

fuzz_target!(|data: &[u8]| {
    check(&Feed::decode(data), &Meter);
});
