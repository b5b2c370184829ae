//! The worked example of `protocol/README.md`, byte for byte. If this test changes, the README
//! (and every firmware implementing it) must change with it.

use protocol::{encode_frame, FrameDecoder, Measurement, Quantity, SensorFrame, Value};

fn manhole_frame() -> SensorFrame<'static> {
    let mut values = heapless::Vec::new();
    for (quantity, value) in [
        (Quantity::Tilt, Value::Float(12.5)),
        (Quantity::Opened, Value::Bool(false)),
        (Quantity::Battery, Value::Int(87)),
    ] {
        values.push(Measurement { quantity, value }).unwrap();
    }
    SensorFrame {
        sensor_id: "MH-0001",
        seq: 17,
        ts_ms: Some(1_732_500_000_123),
        values,
    }
}

/// The exact bytes printed in protocol/README.md ("Worked example").
const README_HEX: &str =
    "13 01 07 4d 48 2d 30 30 30 31 11 01 fb 9a b0 88 b6 32 03 01 01 01 01 01 01 01 05 29 40 01 02 09 03 01 ae 01 97 af 37 ca 00";

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_readme_manhole_frame_encodes_to_the_documented_bytes() {
    let mut out = [0u8; 200];
    let n = encode_frame(&manhole_frame(), &mut out).unwrap();
    println!("{}", hex(&out[..n]));
    assert_eq!(hex(&out[..n]), README_HEX);
}

#[test]
fn the_documented_bytes_decode_to_the_manhole_frame() {
    let bytes: Vec<u8> = README_HEX
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let mut dec: FrameDecoder = FrameDecoder::new();
    let mut got = Vec::new();
    dec.feed(&bytes, |r| got.push(r.map(|f| format!("{f:?}"))));
    assert_eq!(got, vec![Ok(format!("{:?}", manhole_frame()))]);
}

#[test]
fn the_readme_is_in_sync_with_this_test() {
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(README_HEX),
        "protocol/README.md must show the worked example's bytes"
    );
}

/// The sealed ack of protocol/README.md ("Worked example: a sealed ack"): edge `edge-1`, epoch
/// 7, seq 42, stored, under the MAC key of the secret `s3cret`.
const README_ACK_HEX: &str = "02 06 65 64 67 65 2d 31 07 2a 00 fa 35 63 62 bf 87 34 25 08 90 4a 31 91 43 1b 68 6c 30 8b 0c 75 f0 44 84 fc 37 0e 59 43 43 06 0d";

#[test]
fn the_readme_sealed_ack_has_the_documented_bytes_and_opens_only_for_its_edge() {
    use protocol::uplink::{mac_key, Ack, AckOutcome, UplinkError};
    let key = mac_key("s3cret");
    let ack = Ack {
        edge_id: "edge-1".into(),
        epoch: 7,
        seq: 42,
        outcome: AckOutcome::Stored,
    };
    let sealed = ack.seal(&key);
    println!("{}", hex(&sealed));
    assert_eq!(hex(&sealed), README_ACK_HEX);
    assert_eq!(Ack::open(&sealed, &key, "edge-1"), Ok(ack));
    assert_eq!(
        Ack::open(&sealed, &key, "edge-2"),
        Err(UplinkError::Foreign)
    );
}
