//! Any topic and payload through the vendor dialect profiles (acme, lumen, gridsense, canonical)
//! and validation: never a panic; every reading out has a sensor id, a known quantity and a
//! timestamp; a rejected message yields nothing.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

/// Topics that reach each profile, picked by the first input byte; the rest is the payload.
const TOPICS: [&str; 6] = [
    "sensors/MH-0001/readings",
    "acme/HY-0001/data",
    "lumen/v2/telemetry/SL-0003",
    "gridsense/gw/GW-01/up",
    "sensors//readings",
    "unknown/topic",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topic = TOPICS[pick as usize % TOPICS.len()];
    let n = common::normalizer();
    let mut v = common::validator();
    let recv_ns = 1_732_500_000_000_000_000;
    match edge::normalize::readings_of(n, &mut v, topic, payload, recv_ns) {
        Ok(readings) => {
            for r in readings {
                assert!(!r.sensor.0.is_empty(), "a reading without a sensor");
                assert!(r.ts_ns >= 0, "a reading stamped before 1970");
            }
        }
        Err(e) => {
            let _ = e.reason();
        }
    }
});
