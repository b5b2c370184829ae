//! The nastier serial inputs, through real pseudo-terminals into the real `edge run`: the
//! largest frame the protocol allows is accepted, a frame of another version and endless bytes
//! without a delimiter (binary line) or newline (text line) are counted by reason, and the good
//! frames and lines around them still reach the hub, once each.

mod common;

use common::*;
use protocol::{
    encode_frame, measurements, Measurement, Quantity, SensorFrame, Value, MAX_SENSOR_ID_BYTES,
};
use std::io::Write;
use std::time::Duration;

fn small_frame(seq: u32) -> Vec<u8> {
    let values = measurements(&[(Quantity::Tilt, Value::Float(f64::from(seq % 90)))]).unwrap();
    encode(&SensorFrame {
        sensor_id: "MH-0041",
        seq,
        ts_ms: Some(1_732_500_000_000 + u64::from(seq)),
        values,
    })
    .unwrap()
}

fn encode(f: &SensorFrame<'_>) -> Option<Vec<u8>> {
    let mut buf = [0u8; 512];
    let n = encode_frame(f, &mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// The largest frame `encode_frame` accepts: a maximal sensor id and as many float values
/// (distinct quantities) as fit. Returns it and its value count.
fn largest_frame(sensor: &str) -> (Vec<u8>, usize) {
    let mut best = None;
    let mut values: heapless::Vec<Measurement, { protocol::MAX_VALUES }> = heapless::Vec::new();
    for q in Quantity::ALL.iter().filter(|q| !q.is_bool()) {
        if values
            .push(Measurement {
                quantity: *q,
                value: Value::Float(1.0e300),
            })
            .is_err()
        {
            break;
        }
        let f = SensorFrame {
            sensor_id: sensor,
            seq: u32::MAX,
            ts_ms: Some(u64::MAX / 2),
            values: values.clone(),
        };
        match encode(&f) {
            Some(b) => best = Some((b, values.len())),
            None => break,
        }
    }
    best.expect("at least one value fits")
}

fn cobs_decode(enc: &[u8]) -> Vec<u8> {
    let enc = enc.strip_suffix(&[0]).unwrap_or(enc);
    let mut out = Vec::new();
    let mut i = 0;
    while i < enc.len() {
        let code = enc[i] as usize;
        out.extend_from_slice(&enc[i + 1..i + code]);
        i += code;
        if code < 0xff && i < enc.len() {
            out.push(0);
        }
    }
    out
}

fn cobs_encode(raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut code_at = 0;
    let mut code = 1u8;
    for &b in raw {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xff {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out.push(0);
    out
}

/// CRC-32/ISO-HDLC (the frame's checksum).
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A valid frame re-labelled version `v`, with a correct CRC: only the version is wrong.
fn with_version(frame: &[u8], v: u8) -> Vec<u8> {
    let mut raw = cobs_decode(frame);
    let body_end = raw.len() - 4;
    assert_eq!(
        u32::from_le_bytes(raw[body_end..].try_into().unwrap()),
        crc32(&raw[..body_end]),
        "the test's CRC matches the protocol's"
    );
    raw[0] = v;
    let crc = crc32(&raw[..body_end]);
    raw[body_end..].copy_from_slice(&crc.to_le_bytes());
    cobs_encode(&raw)
}

#[test]
fn largest_frames_pass_and_wrong_versions_and_endless_runs_are_counted() {
    let mut rig = SerialRig::start("serial-hostile");
    let (a, b) = (&mut rig.a, &mut rig.b);

    // Line A.
    let long_id = "L".repeat(MAX_SENSOR_ID_BYTES);
    let (big, big_values) = largest_frame(&long_id);
    assert!(big.len() > 100, "a large frame: {} bytes", big.len());
    let mut bytes = vec![0u8];
    bytes.extend(small_frame(0));
    bytes.extend(&big);
    for v in [0u8, 2, 0x7f, 0xff] {
        bytes.extend(with_version(&small_frame(1), v));
    }
    bytes.extend(small_frame(2));
    // 1 MiB without a delimiter, then the delimiter: one `too_long`, nothing held beyond the
    // decoder's buffer.
    bytes.extend(std::iter::repeat_n(0x42u8, 1 << 20));
    bytes.push(0);
    bytes.extend(small_frame(3));
    for chunk in bytes.chunks(4096) {
        a.master.write_all(chunk).unwrap();
    }

    // Line B: a good line, 1 MiB without a newline, then good lines.
    let line = |seq: u32| {
        format!(
            "id=HY-0013 seq={seq} t={} p=312.5kPa tilt=1.2deg leak=0\r\n",
            1_732_500_000_000u64 + u64::from(seq)
        )
    };
    b.master.write_all(line(0).as_bytes()).unwrap();
    for _ in 0..256 {
        b.master.write_all(&[b'z'; 4096]).unwrap();
    }
    b.master.write_all(b"\r\n").unwrap();
    b.master.write_all(line(1).as_bytes()).unwrap();
    b.master.write_all(line(2).as_bytes()).unwrap();
    b.master.flush().unwrap();

    // 3 good small frames × 1 value, the big frame's values, 3 lines × 3 values.
    let want = 3 + big_values + 3 * 3;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rig.store.lock().unwrap().unique() < want {
        if std::time::Instant::now() > deadline {
            let mut keys: Vec<_> = rig.store.lock().unwrap().keys().into_iter().collect();
            keys.sort();
            panic!(
                "the hub got {} of {want} readings: {keys:?}\nedge metrics:\n{}",
                keys.len(),
                rig.edge.get("/metrics").unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = rig.store.lock().unwrap();
    assert_eq!(s.unique(), want, "every good frame and line, once");
    assert!(
        s.keys().iter().any(|(sensor, _, _)| sensor == &long_id),
        "the maximal frame was accepted"
    );
    drop(s);
    let rejects = |reason: &str| rig.rejects(reason);
    wait_until(
        "wrong versions and endless runs counted",
        Duration::from_secs(10),
        || rejects("unknown_version") >= 4.0 && rejects("too_long") >= 2.0,
    );
    assert!(rig.edge.get("/health").is_some(), "the edge is still up");
    assert!(rig.edge.source_up("A") && rig.edge.source_up("B"));
}
