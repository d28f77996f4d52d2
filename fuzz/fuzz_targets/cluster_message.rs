//! The cluster bus's message decoder (`cluster::bus::decode`) on arbitrary frames: a peer, or
//! anything that reaches the bus port, sends what it likes. Every input must decode to a message
//! or to an error that drops the link, never panic; a message it accepts must encode again and
//! decode once more. The input's first byte says whether to stamp a valid signature, length and
//! version on it (most random inputs would stop there otherwise); the seed is a MEET captured
//! from redis-server 7.0.15.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warpengine::cluster::bus;

fuzz_target!(|input: &[u8]| {
    let Some((&stamp, rest)) = input.split_first() else {
        return;
    };
    let mut frame = rest.to_vec();
    if stamp & 1 == 1 && frame.len() >= 10 {
        let len = frame.len() as u32;
        frame[..4].copy_from_slice(b"RCmb");
        frame[4..8].copy_from_slice(&len.to_be_bytes());
        frame[8..10].copy_from_slice(&1u16.to_be_bytes());
    }
    if let Some(first8) = frame.first_chunk::<8>() {
        let _ = bus::frame_len(first8);
    }
    let Ok(message) = bus::decode(&frame) else {
        return;
    };
    let again = bus::encode(&message);
    assert!(
        bus::decode(&again).is_ok(),
        "a message the bus accepted does not decode from its own encoding"
    );
});
