//! Property tests of the serial frame codec and the uplink messages.

use proptest::prelude::*;
use protocol::uplink::{
    Ack, AckOutcome, EdgeStatus, Gap, GapReason, Quality, Reading, ReadingFlags, UplinkBatch,
    UplinkError,
};
use protocol::{
    encode_frame, FrameDecoder, FrameError, Measurement, Quantity, SensorFrame, Value,
    MAX_ENCODED_FRAME_BYTES, MAX_VALUES,
};

fn quantity() -> impl Strategy<Value = Quantity> {
    (0..Quantity::ALL.len()).prop_map(|i| Quantity::ALL[i])
}

/// Any value, NaN included: it must round-trip bit for bit.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_map(Value::Float),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn same_value(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

#[derive(Debug, Clone)]
struct OwnedFrame {
    sensor_id: String,
    seq: u32,
    ts_ms: Option<u64>,
    values: Vec<(Quantity, Value)>,
}

impl OwnedFrame {
    fn frame(&self) -> SensorFrame<'_> {
        let mut values = heapless::Vec::new();
        for &(quantity, value) in &self.values {
            values.push(Measurement { quantity, value }).unwrap();
        }
        SensorFrame {
            sensor_id: &self.sensor_id,
            seq: self.seq,
            ts_ms: self.ts_ms,
            values,
        }
    }

    fn matches(&self, f: &SensorFrame<'_>) -> bool {
        f.sensor_id == self.sensor_id
            && f.seq == self.seq
            && f.ts_ms == self.ts_ms
            && f.values.len() == self.values.len()
            && f.values
                .iter()
                .zip(&self.values)
                .all(|(m, &(q, v))| m.quantity == q && same_value(m.value, v))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = [0u8; MAX_ENCODED_FRAME_BYTES + 1];
        let n = encode_frame(&self.frame(), &mut out).unwrap();
        out[..n].to_vec()
    }
}

fn frame() -> impl Strategy<Value = OwnedFrame> {
    (
        "[A-Za-z0-9-]{1,16}|\\PC{1,8}",
        any::<u32>(),
        any::<Option<u64>>(),
        prop::collection::vec((quantity(), value()), 0..=MAX_VALUES),
    )
        .prop_filter("id fits", |(id, ..)| id.len() <= 32)
        .prop_map(|(sensor_id, seq, ts_ms, values)| OwnedFrame {
            sensor_id,
            seq,
            ts_ms,
            values,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_frame_round_trips(f in frame()) {
        let bytes = f.encode();
        prop_assert_eq!(bytes.iter().filter(|&&b| b == 0).count(), 1, "only the delimiter is zero");
        let mut dec: FrameDecoder = FrameDecoder::new();
        let mut seen = 0;
        dec.feed(&bytes, |r| {
            let got = r.expect("a valid frame decodes");
            assert!(f.matches(&got), "{got:?} != {f:?}");
            seen += 1;
        });
        prop_assert_eq!(seen, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_every_run_is_accounted(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut dec: FrameDecoder = FrameDecoder::new();
        let mut outcomes = 0u64;
        dec.feed(&bytes, |_| outcomes += 1);
        let s = dec.stats();
        prop_assert_eq!(s.frames + s.rejected(), outcomes);
        prop_assert!(dec.pending() <= MAX_ENCODED_FRAME_BYTES);
    }

    #[test]
    fn a_frame_embedded_in_noise_is_recovered(
        f in frame(),
        before in prop::collection::vec(any::<u8>(), 0..600),
        after in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        // Noise may end mid-"frame"; a sender starts each transmission with 0x00 to resync.
        let mut stream = before;
        stream.push(0);
        stream.extend(f.encode());
        stream.extend(after);
        let mut dec: FrameDecoder = FrameDecoder::new();
        let mut found = false;
        dec.feed(&stream, |r| {
            if let Ok(got) = r {
                found |= f.matches(&got);
            }
        });
        prop_assert!(found, "frame lost in noise");
    }

    #[test]
    fn a_single_flipped_bit_is_never_accepted(f in frame(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = f.encode();
        let i = at.index(bytes.len() - 1); // keep the delimiter
        bytes[i] ^= 1 << bit;
        let mut dec: FrameDecoder = FrameDecoder::new();
        dec.feed(&bytes, |_| {});
        // A flip that makes a 0x00 splits the run in two; either way the CRC refuses every part.
        prop_assert_eq!(dec.stats().frames, 0, "corrupted frame accepted: {:?}", dec.stats());
        prop_assert!(dec.stats().rejected() >= 1);
    }

    #[test]
    fn uplink_batches_round_trip(
        edge in "[a-z0-9-]{1,24}",
        epoch in any::<u64>(),
        seq in any::<u64>(),
        readings in prop::collection::vec((quantity(), value(), any::<i64>(), 0u8..3, any::<u8>()), 0..50),
        secret in "\\PC{0,40}",
    ) {
        let batch = UplinkBatch {
            edge_id: edge.as_str().into(),
            epoch,
            seq,
            readings: readings.iter().enumerate().map(|(i, &(quantity, value, ts_ns, q, flags))| Reading {
                sensor: format!("S-{i}").as_str().into(),
                quantity,
                value: if value.is_finite() { value } else { Value::Float(0.0) },
                ts_ns,
                quality: [Quality::Good, Quality::Suspect, Quality::Bad][q as usize],
                flags: ReadingFlags(flags),
            }).collect(),
            gaps: vec![Gap { sensor: "S-0".into(), from_ns: 1, to_ns: 2, count: 3, reason: GapReason::BufferFull }],
        };
        let key = protocol::uplink::mac_key(&secret);
        let sealed = batch.seal(&key);
        prop_assert_eq!(UplinkBatch::open(&sealed).unwrap().verify(&key).unwrap(), batch);
        let ack = Ack { edge_id: edge.as_str().into(), epoch, seq, outcome: AckOutcome::Stored };
        prop_assert_eq!(Ack::open(&ack.seal(&key), &key, &edge).unwrap(), ack.clone());
        // A forger without the key: unsigned, or sealed under another edge's key.
        prop_assert_eq!(Ack::open(&ack.encode_unsigned(), &key, &edge), Err(UplinkError::Unsigned));
        let foreign = protocol::uplink::mac_key(&format!("{secret}x"));
        prop_assert_eq!(Ack::open(&ack.seal(&foreign), &key, &edge), Err(UplinkError::BadMac));
        // A batch tag is never an ack tag, even under the right key.
        prop_assert!(Ack::open(&sealed, &key, &edge).is_err());
        let status = EdgeStatus {
            edge_id: edge.as_str().into(),
            online: seq % 2 == 0,
            version: "0.1.0".into(),
            epoch,
            counter: seq,
            will_counter: seq / 2,
            backlog_readings: seq,
            backlog_bytes: epoch,
            oldest_unacked_ns: None,
            ts_ns: 1,
            sources_down: Vec::new(),
        };
        let sealed = status.seal(&key);
        prop_assert_eq!(EdgeStatus::open(&sealed, &key).unwrap(), status);
        let other = protocol::uplink::mac_key(&format!("{secret}x"));
        prop_assert_eq!(EdgeStatus::open(&sealed, &other), Err(UplinkError::BadMac));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_uplink_decoders(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = UplinkBatch::open(&bytes).map(|u| u.verify(&[0; 32]));
        prop_assert!(Ack::open(&bytes, &[0; 32], "edge-1").is_err(), "nobody forges an ack tag");
        let _ = EdgeStatus::decode(&bytes);
    }
}

#[test]
fn an_endless_run_without_delimiter_is_counted_once_as_too_long() {
    let mut dec: FrameDecoder = FrameDecoder::new();
    let mut errors = Vec::new();
    dec.feed(&vec![0x55; 100_000], |r| {
        errors.push(r.map(|_| ()).unwrap_err())
    });
    assert!(
        errors.is_empty(),
        "nothing is reported before the delimiter"
    );
    assert!(dec.pending() <= MAX_ENCODED_FRAME_BYTES);
    dec.feed(&[0], |r| errors.push(r.map(|_| ()).unwrap_err()));
    assert_eq!(errors, vec![FrameError::TooLong]);
    assert_eq!(dec.stats().too_long, 1);
}

#[test]
fn each_kind_of_bad_frame_is_counted_under_its_reason() {
    let good = OwnedFrame {
        sensor_id: "HY-0007".into(),
        seq: 1,
        ts_ms: None,
        values: vec![(Quantity::Pressure, Value::Float(0.31))],
    };
    let mut stream = Vec::new();
    // crc: flip a body byte (stays non-zero), re-terminate
    let mut bad = good.encode();
    bad[4] = if bad[4] == 0xFF { 0xFE } else { bad[4] | 0x80 };
    stream.extend(&bad);
    // too short
    stream.extend([0x02, 0x01, 0x00]);
    // cobs: code byte pointing past the run
    stream.extend([0x09, 0x01, 0x02, 0x00]);
    // unknown version: re-encode version 2 with a correct CRC
    let raw = {
        let mut body = vec![2u8];
        body.extend(postcard::to_allocvec(&good.frame()).unwrap());
        let crc = protocol::CRC32.checksum(&body);
        body.extend(crc.to_le_bytes());
        body
    };
    stream.extend(cobs_encode(&raw));
    // malformed: version 1, valid CRC, body of garbage (a quantity code past the table)
    let mut body = vec![1u8, 1, b'X', 0, 0, 1, 200, 0];
    let crc = protocol::CRC32.checksum(&body);
    body.extend(crc.to_le_bytes());
    stream.extend(cobs_encode(&body));
    // and a good one last: still decoded
    stream.extend(good.encode());

    let mut dec: FrameDecoder = FrameDecoder::new();
    let mut good_seen = 0;
    dec.feed(&stream, |r| {
        if r.is_ok() {
            good_seen += 1
        }
    });
    let s = dec.stats();
    assert_eq!(
        (
            s.crc,
            s.too_short,
            s.cobs,
            s.unknown_version,
            s.malformed,
            s.frames
        ),
        (1, 1, 1, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(good_seen, 1);
}

/// COBS for runs of fewer than 254 non-zero bytes, written out independently of the crate's
/// encoder (a test oracle), plus the delimiter.
fn cobs_encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in src.split(|&b| b == 0) {
        assert!(chunk.len() < 254, "oracle handles short runs only");
        out.push(chunk.len() as u8 + 1);
        out.extend(chunk);
    }
    out.push(0);
    out
}
