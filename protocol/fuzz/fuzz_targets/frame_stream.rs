//! The serial stream decoder on arbitrary bytes, fed in arbitrary chunk sizes: it must never
//! panic, never hold more than its buffer, and account for every delimited run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{FrameDecoder, MAX_ENCODED_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = (chunk as usize % 64) + 1;
    let mut dec: FrameDecoder = FrameDecoder::new();
    let mut outcomes = 0u64;
    for part in rest.chunks(chunk) {
        dec.feed(part, |r| {
            if let Ok(f) = r {
                assert!(f.values.len() <= protocol::MAX_VALUES);
            }
            outcomes += 1;
        });
        assert!(dec.pending() <= MAX_ENCODED_FRAME_BYTES);
    }
    let s = dec.stats();
    assert_eq!(s.frames + s.rejected(), outcomes);
});
