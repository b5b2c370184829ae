//! The contract with `firmware-sim`: its real output for all 200 registry sensors (MQTT dump
//! of every dialect, serial line A bytes, serial line B text; fixtures generated with
//! `firmware-sim run --count 2 --interval-scale 0 --start 1732500000000 --mqtt-dump mqtt.txt
//! --serial-a a.bin --serial-b b.txt --record record.jsonl`) normalizes through the shipped
//! profiles to exactly the canonical readings the simulator recorded, with no rejects.

use edge::normalize::profile::{mask_of, Profile};
use edge::normalize::validate::Validator;
use edge::normalize::Normalizer;
use protocol::uplink::{Reading, ReadingFlags};
use protocol::{FrameDecoder, Quantity};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// (recorded ts_ms, recorded value) per (sensor, quantity).
type Recorded = HashMap<(String, String), Vec<(Option<i64>, serde_json::Value)>>;

const RECV_NS: i64 = 1_732_500_400_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/firmware-sim")
            .join(name),
    )
    .unwrap()
}

#[test]
fn firmware_sim_output_for_every_dialect_normalizes_to_its_record_exactly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let n = Normalizer::new(
        Profile::load_dir(&dir).unwrap(),
        HashMap::new(),
        mask_of(Quantity::Alarm),
    );
    let registered: HashSet<String> = edge::registry::load_csv(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry/sensors.csv"),
        "edge-xq-01",
    )
    .unwrap();
    let mut v = Validator::new(registered, 300_000, 0);
    let mut got: Vec<Reading> = Vec::new();

    let mqtt = String::from_utf8(fixture("mqtt.txt")).unwrap();
    for line in mqtt.lines() {
        let (topic, payload) = line.split_once('\t').unwrap();
        let mut reports = Vec::new();
        let skipped = n
            .mqtt(topic, payload.as_bytes(), &mut reports)
            .unwrap_or_else(|e| panic!("{topic} {payload}: {e}"));
        assert_eq!(skipped, 0, "{topic} {payload}");
        for r in &reports {
            v.validate(r, RECV_NS, &mut got);
        }
    }
    let mut dec: FrameDecoder = FrameDecoder::new();
    dec.feed(&fixture("a.bin"), |f| {
        let r = n.frame(&f.expect("line A frames decode"));
        v.validate(&r, RECV_NS, &mut got);
    });
    let text = String::from_utf8(fixture("b.txt")).unwrap();
    for line in text.lines() {
        let (r, skipped) = n.text_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(skipped, 0, "{line}");
        v.validate(&r, RECV_NS, &mut got);
    }

    let record = String::from_utf8(fixture("record.jsonl")).unwrap();
    let mut want: HashMap<(String, String, Option<i64>, u64), serde_json::Value> = HashMap::new();
    for line in record.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            j["sensor"].as_str().unwrap().to_string(),
            j["quantity"].as_str().unwrap().to_string(),
            j["ts_ms"].as_i64(),
            j["seq"].as_u64().unwrap(),
        );
        assert!(want.insert(key, j["value"].clone()).is_none(), "{line}");
    }
    assert_eq!(got.len(), want.len(), "reading count");
    assert!(got.iter().all(|r| !r.flags.has(ReadingFlags::UNREGISTERED)));
    // Normal operation (no scenario): nothing is out of range or an implausible jump.
    let not_good: Vec<_> = got
        .iter()
        .filter(|r| r.quality != protocol::uplink::Quality::Good)
        .collect();
    assert!(not_good.is_empty(), "{not_good:#?}");
    // Match every normalized reading to the record: value, and the timestamp the sensor sent
    // (or the edge's receive time + flag when the dialect has none).
    let mut by_sensor_q: Recorded = HashMap::new();
    for ((s, q, ts, _), val) in &want {
        by_sensor_q
            .entry((s.clone(), q.clone()))
            .or_default()
            .push((*ts, val.clone()));
    }
    for r in &got {
        let cands = by_sensor_q
            .get_mut(&(r.sensor.0.clone(), r.quantity.name().to_string()))
            .unwrap_or_else(|| panic!("unexpected reading {r:?}"));
        let pos = cands
            .iter()
            .position(|(ts, val)| {
                let ts_ok = match ts {
                    Some(ms) => r.ts_ns == ms * 1_000_000,
                    // Receive time in whole ms, one ms later per earlier report of the sensor.
                    None => {
                        r.flags.has(ReadingFlags::TS_FROM_EDGE)
                            && (RECV_NS..RECV_NS + 1_000_000_000).contains(&r.ts_ns)
                            && (r.ts_ns - RECV_NS) % 1_000_000 == 0
                    }
                };
                let val_ok = match val {
                    serde_json::Value::Bool(b) => r.value == protocol::Value::Bool(*b),
                    other => {
                        let x = other.as_f64().unwrap();
                        (r.value.as_f64() - x).abs() <= 1e-9 * x.abs().max(1.0)
                    }
                };
                ts_ok && val_ok
            })
            .unwrap_or_else(|| panic!("no recorded match for {r:?} among {cands:?}"));
        cands.swap_remove(pos);
    }
}
