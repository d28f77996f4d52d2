//! RESTORE's payload reader (`persist::rdb_value`) on arbitrary bodies: every input must decode to
//! a value or to nothing (RESTORE's `ERR Bad data format`), never panic or hang, and a value it
//! accepts must encode again (DUMP) and decode once more. The body is sealed here with the
//! version and CRC-64 trailer a real payload carries, so that inputs reach the decoder instead of
//! stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warpengine::persist::rdb::{self, Reader};
use warpengine::persist::rdb_value::{self, Encodings};

fuzz_target!(|body: &[u8]| {
    let payload = rdb::seal(body.to_vec());
    let body = rdb::open(&payload).expect("a payload sealed here opens");
    let enc = Encodings::default();
    let Ok(value) = rdb_value::read_value(&mut Reader::new(body), &enc) else {
        return;
    };
    let mut again = Vec::new();
    if rdb_value::write_value(&mut again, &value, &enc).is_ok() {
        assert!(
            rdb_value::read_value(&mut Reader::new(&again), &enc).is_ok(),
            "a value RESTORE accepted does not read back from its own DUMP"
        );
    }
});
