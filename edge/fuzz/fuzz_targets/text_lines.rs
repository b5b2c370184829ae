//! Arbitrary serial bytes through the text-line splitter and the `serial-text` profile, in
//! arbitrary chunk sizes: never a panic, never a line longer than the limit, and every line
//! either yields a report or a counted reason.
#![no_main]

#[path = "common.rs"]
mod common;

use edge::source::text::{Line, LineSplitter, LINE_BYTES_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = (chunk as usize % 64) + 1;
    let n = common::normalizer();
    let mut v = common::validator();
    let mut s = LineSplitter::default();
    for part in rest.chunks(chunk) {
        s.feed(part, |line| {
            if let Line::Text(t) = line {
                assert!(t.len() <= LINE_BYTES_MAX);
                match n.text_line(t) {
                    Ok((report, _skipped)) => {
                        assert!(!report.sensor.is_empty());
                        let mut out = Vec::new();
                        v.validate(&report, 1_732_500_000_000_000_000, &mut out);
                    }
                    Err(e) => {
                        let _ = e.reason();
                    }
                }
            }
        });
    }
});
