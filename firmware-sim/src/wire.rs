//! Deliberate damage on serial line A, made so that a receiver can count it exactly.
//!
//! Every transmission on line A starts with a 0x00 (a receiver that joined mid-frame resyncs at
//! once; two 0x00 in a row are idle line). A corrupted or truncated frame ends with its own 0x00,
//! and a noise burst is non-zero bytes followed by one 0x00: each costs a receiver exactly one
//! rejected run (`DecodeStats::rejected() += 1`), never a neighbouring good frame. Each damaged
//! transmission is checked against the protocol crate's own decoder before it is sent.

use protocol::FrameDecoder;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a fresh receiver makes of `bytes`: (frames decoded, runs rejected).
pub fn decode_counts(bytes: &[u8]) -> (u64, u64) {
    let mut d: FrameDecoder = FrameDecoder::new();
    d.feed(&[0], |_| {});
    d.feed(bytes, |_| {});
    let s = d.stats();
    (s.frames, s.rejected())
}

/// Positions of COBS data bytes (not code bytes) in an encoded frame without its delimiter.
fn data_positions(encoded: &[u8]) -> Vec<usize> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let code = encoded[i] as usize;
        let end = (i + code).min(encoded.len());
        out.extend(i + 1..end);
        i = end.max(i + 1);
    }
    out
}

/// `frame` (one encoded frame, 0x00 last) with one data byte changed to another non-zero value:
/// the COBS structure stays intact and the CRC-32 catches the single-byte error.
pub fn corrupt(frame: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let body = &frame[..frame.len() - 1];
    let positions = data_positions(body);
    for _ in 0..16 {
        let mut out = frame.to_vec();
        let at = positions[rng.gen_range(0..positions.len())];
        let old = out[at];
        let mut new = rng.gen_range(1..=255u8);
        if new == old {
            new = if old == 255 { 1 } else { old + 1 };
        }
        out[at] = new;
        if decode_counts(&out) == (0, 1) {
            return out;
        }
    }
    unreachable!("a single-byte change inside a CRC-32 frame is always detected")
}

/// A strict, non-empty prefix of `frame` followed by 0x00.
pub fn truncate(frame: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let body_len = frame.len() - 1;
    for _ in 0..16 {
        let keep = rng.gen_range(1..body_len);
        let out: Vec<u8> = frame[..keep].iter().copied().chain([0]).collect();
        if decode_counts(&out) == (0, 1) {
            return out;
        }
    }
    // Astronomically unlikely (a prefix whose CRC matches); one byte always fails.
    vec![frame[0], 0]
}

/// `len_min..=len_max` random non-zero bytes and a 0x00.
pub fn noise(len_min: usize, len_max: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    loop {
        let len = rng.gen_range(len_min..=len_max);
        let mut out: Vec<u8> = (0..len).map(|_| rng.gen_range(1..=255u8)).collect();
        out.push(0);
        if decode_counts(&out) == (0, 1) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{serial_binary, Report};
    use crate::sensors::SensorType;
    use protocol::{Quantity, Value};
    use rand::SeedableRng;

    fn frame(seq: u32) -> Vec<u8> {
        let values = [
            (Quantity::Tilt, Value::Float(12.5)),
            (Quantity::Opened, Value::Bool(false)),
            (Quantity::WaterLevel, Value::Float(0.0)),
            (Quantity::Battery, Value::Int(87)),
        ];
        let r = Report {
            sensor_id: "MH-0041",
            kind: SensorType::ManholeCover,
            seq,
            ts_ms: 1_732_500_000_123,
            values: &values,
        };
        serial_binary(&r).0
    }

    #[test]
    fn each_damaged_transmission_costs_exactly_one_rejected_run() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for seq in 0..500 {
            let f = frame(seq);
            assert_eq!(decode_counts(&f), (1, 0));
            assert_eq!(decode_counts(&corrupt(&f, &mut rng)), (0, 1));
            assert_eq!(decode_counts(&truncate(&f, &mut rng)), (0, 1));
            assert_eq!(decode_counts(&noise(1, 300, &mut rng)), (0, 1));
        }
    }

    #[test]
    fn damage_never_swallows_the_next_frame() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let mut stream = Vec::new();
        for seq in 0..100 {
            let f = frame(seq);
            stream.push(0);
            stream.extend(match seq % 4 {
                0 => corrupt(&f, &mut rng),
                1 => truncate(&f, &mut rng),
                2 => noise(4, 40, &mut rng),
                _ => f.clone(),
            });
            stream.push(0);
            stream.extend(&f);
        }
        assert_eq!(decode_counts(&stream), (125, 75));
    }
}
