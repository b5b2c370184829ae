//! Table tests: every vendor dialect of `firmware-sim/DIALECTS.md` and both serial formats
//! normalize to the canonical values, with the profiles shipped in `config/profiles/`.

use edge::normalize::profile::Reject;
use edge::normalize::validate::Validator;
use edge::normalize::Normalizer;
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{encode_frame, measurements, FrameDecoder, Quantity, SensorFrame, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

const RECV_NS: i64 = 1_732_500_100_000_000_000;

fn normalizer() -> Normalizer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let profiles = edge::normalize::profile::Profile::load_dir(&dir).unwrap();
    let urgent = edge::normalize::profile::mask_of(Quantity::Alarm)
        | edge::normalize::profile::mask_of(Quantity::Opened);
    Normalizer::new(profiles, HashMap::new(), urgent)
}

fn validator() -> Validator {
    let registered: HashSet<String> = [
        "HY-0001", "FG-0001", "SL-0003", "EF-0001", "MH-0001", "SD-0001", "GD-0001", "DC-0001",
        "IN-0001", "EL-0001", "WB-0001", "EN-0001", "HY-0013", "MH-0041",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Validator::new(registered, 300_000, 0)
}

fn mqtt(topic: &str, payload: &str) -> Vec<Reading> {
    let n = normalizer();
    let mut v = validator();
    edge::normalize::readings_of(&n, &mut v, topic, payload.as_bytes(), RECV_NS)
        .unwrap_or_else(|e| panic!("{topic}: {e}"))
}

/// Normalizes one MQTT message and checks the readings with [`expect`]; returns them.
fn expect_mqtt(
    topic: &str,
    payload: &str,
    want: &[(&str, Quantity, f64, i64, u8)],
) -> Vec<Reading> {
    let got = mqtt(topic, payload);
    expect(&got, want);
    got
}

/// (sensor, quantity, value, ts_ns, flags) expectations; values compared within 1e-9.
fn expect(got: &[Reading], want: &[(&str, Quantity, f64, i64, u8)]) {
    let mut got: Vec<_> = got.iter().collect();
    got.sort_by_key(|r| (r.sensor.0.clone(), r.quantity));
    let mut want = want.to_vec();
    want.sort_by_key(|w| (w.0.to_string(), w.1));
    assert_eq!(got.len(), want.len(), "readings: {got:#?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.sensor.0, w.0);
        assert_eq!(g.quantity, w.1);
        assert!(
            (g.value.as_f64() - w.2).abs() < 1e-9,
            "{} {}: got {:?}, want {}",
            w.0,
            w.1,
            g.value,
            w.2
        );
        if w.1.is_bool() {
            assert!(
                matches!(g.value, Value::Bool(_)),
                "{:?} must be a bool",
                g.value
            );
        }
        assert_eq!(g.ts_ns, w.3, "{} {} ts", w.0, w.1);
        assert_eq!(g.flags.0, w.4, "{} {} flags", w.0, w.1);
        assert_eq!(g.quality, Quality::Good);
    }
}

const TS_MS: i64 = 1_732_500_000_123;
const EDGE: u8 = ReadingFlags::TS_FROM_EDGE;
const URGENT: u8 = ReadingFlags::URGENT;

#[test]
fn canonical_json_needs_no_profile() {
    let ts = TS_MS * 1_000_000;
    expect_mqtt(
        "sensors/MH-0001/readings",
        r#"{"ts": 1732500000123, "seq": 17, "values": {"tilt": 12.5, "opened": false, "water_level": 3.0, "battery": 87}}"#,
        &[
            ("MH-0001", Quantity::Tilt, 12.5, ts, 0),
            ("MH-0001", Quantity::Opened, 0.0, ts, URGENT),
            ("MH-0001", Quantity::WaterLevel, 3.0, ts, 0),
            ("MH-0001", Quantity::Battery, 87.0, ts, 0),
        ],
    );
}

#[test]
fn canonical_json_accepts_an_rfc3339_timestamp_or_none() {
    expect_mqtt(
        "sensors/WB-0001/readings",
        r#"{"ts": "2024-11-25T02:00:00.123Z", "values": {"fill_level": 40}}"#,
        &[("WB-0001", Quantity::FillLevel, 40.0, TS_MS * 1_000_000, 0)],
    );
    expect_mqtt(
        "sensors/WB-0001/readings",
        r#"{"values": {"fill_level": 41}}"#,
        &[("WB-0001", Quantity::FillLevel, 41.0, RECV_NS, EDGE)],
    );
}

#[test]
fn acme_hydrant_kpa_becomes_mpa_and_on_off_a_bool() {
    let ts = 1_732_500_000_000_000_000;
    expect_mqtt(
        "acme/HY-0001/data",
        r#"{"devId": "HY-0001", "sn": 12, "time": 1732500000, "data": {"press_kpa": 312.5, "tilt_deg": 1.2, "leak": "OFF"}}"#,
        &[
            ("HY-0001", Quantity::Pressure, 0.3125, ts, 0),
            ("HY-0001", Quantity::Tilt, 1.2, ts, 0),
            ("HY-0001", Quantity::Leak, 0.0, ts, URGENT),
        ],
    );
    let r = mqtt(
        "acme/HY-0001/data",
        r#"{"devId": "HY-0001", "sn": 13, "time": 1732500001, "data": {"leak": "ON"}}"#,
    );
    assert_eq!(r[0].value, Value::Bool(true));
}

#[test]
fn acme_flood_gauge_mm_becomes_cm() {
    expect_mqtt(
        "acme/FG-0001/data",
        r#"{"devId": "FG-0001", "sn": 1, "time": 1732500000, "data": {"level_mm": 155}}"#,
        &[(
            "FG-0001",
            Quantity::WaterLevel,
            15.5,
            1_732_500_000_000_000_000,
            0,
        )],
    );
}

#[test]
fn lumen_street_light_ma_becomes_a_and_gets_receive_time() {
    expect_mqtt(
        "lumen/v2/telemetry/SL-0003",
        r#"{"device": "SL-0003", "cnt": 12, "U": 229.8, "I_mA": 350.0, "P": 80.4, "lamp": 1}"#,
        &[
            ("SL-0003", Quantity::Voltage, 229.8, RECV_NS, EDGE),
            ("SL-0003", Quantity::Current, 0.35, RECV_NS, EDGE),
            ("SL-0003", Quantity::Power, 80.4, RECV_NS, EDGE),
            ("SL-0003", Quantity::LampOn, 1.0, RECV_NS, EDGE),
        ],
    );
}

#[test]
fn lumen_electrical_fire_a_becomes_ma() {
    expect_mqtt(
        "lumen/v2/telemetry/EF-0001",
        r#"{"device": "EF-0001", "cnt": 3, "leak_A": 0.12, "T_cable": 45.2}"#,
        &[
            ("EF-0001", Quantity::ResidualCurrent, 120.0, RECV_NS, EDGE),
            ("EF-0001", Quantity::CableTemp, 45.2, RECV_NS, EDGE),
        ],
    );
}

#[test]
fn gridsense_gateway_message_unpacks_every_sensor_type() {
    let ts = TS_MS * 1_000_000;
    let r = expect_mqtt(
        "gridsense/gw/GW-01/up",
        r#"{"gw": "GW-01", "ts": "2024-11-25T02:00:00.123Z", "items": [
            {"sid": "MH-0001", "seq": 5, "m": {"angle": 2.5, "open": 1, "lvl": 4.0, "bat": 90}},
            {"sid": "SD-0001", "seq": 6, "m": {"obs": 1.5, "alm": 0, "bat": 80}},
            {"sid": "GD-0001", "seq": 7, "m": {"lel": 3.0}},
            {"sid": "DC-0001", "seq": 8, "m": {"door": "OPEN"}},
            {"sid": "IN-0001", "seq": 9, "m": {"pir": 1}},
            {"sid": "EL-0001", "seq": 10, "m": {"trap": 0, "err": 12, "door": "CLOSED"}},
            {"sid": "WB-0001", "seq": 11, "m": {"fill": 55}},
            {"sid": "EN-0001", "seq": 12, "m": {"pm25": 35.0, "db": 55.5, "temp_c": 21.5, "rh": 45}}
        ]}"#,
        &[
            ("MH-0001", Quantity::Tilt, 2.5, ts, 0),
            ("MH-0001", Quantity::Opened, 1.0, ts, URGENT),
            ("MH-0001", Quantity::WaterLevel, 4.0, ts, 0),
            ("MH-0001", Quantity::Battery, 90.0, ts, 0),
            ("SD-0001", Quantity::Smoke, 1.5, ts, 0),
            ("SD-0001", Quantity::Alarm, 0.0, ts, URGENT),
            ("SD-0001", Quantity::Battery, 80.0, ts, 0),
            ("GD-0001", Quantity::Gas, 3.0, ts, 0),
            ("DC-0001", Quantity::DoorOpen, 1.0, ts, 0),
            ("IN-0001", Quantity::Motion, 1.0, ts, 0),
            ("EL-0001", Quantity::Trapped, 0.0, ts, URGENT),
            ("EL-0001", Quantity::FaultCode, 12.0, ts, 0),
            ("EL-0001", Quantity::DoorOpen, 0.0, ts, 0),
            ("WB-0001", Quantity::FillLevel, 55.0, ts, 0),
            ("EN-0001", Quantity::Pm25, 35.0, ts, 0),
            ("EN-0001", Quantity::Noise, 55.5, ts, 0),
            ("EN-0001", Quantity::Temperature, 21.5, ts, 0),
            ("EN-0001", Quantity::Humidity, 45.0, ts, 0),
        ],
    );
    let fault = r
        .iter()
        .find(|r| r.quantity == Quantity::FaultCode)
        .unwrap();
    assert_eq!(fault.value, Value::Int(12));
}

#[test]
fn serial_text_lines_convert_unit_suffixes() {
    let n = normalizer();
    let mut v = validator();
    let cases: &[(&str, &[(Quantity, f64)])] = &[
        (
            "id=HY-0013 seq=12 t=1732500000123 p=312.5kPa tilt=1.2deg leak=0",
            &[
                (Quantity::Pressure, 0.3125),
                (Quantity::Tilt, 1.2),
                (Quantity::Leak, 0.0),
            ],
        ),
        (
            "id=HY-0013 seq=13 t=1732500000123 p=0.3MPa",
            &[(Quantity::Pressure, 0.3)],
        ),
        (
            "id=HY-0013 seq=14 water_level=155mm",
            &[(Quantity::WaterLevel, 15.5)],
        ),
        (
            "id=HY-0013 seq=15 water_level=15cm",
            &[(Quantity::WaterLevel, 15.0)],
        ),
        (
            "id=HY-0013 seq=16 current=350mA",
            &[(Quantity::Current, 0.35)],
        ),
        (
            "id=HY-0013 seq=17 residual_current=0.12A",
            &[(Quantity::ResidualCurrent, 120.0)],
        ),
        (
            "id=HY-0013 seq=18 voltage=230V power=80W battery=87% cable_temp=45.5C",
            &[
                (Quantity::Voltage, 230.0),
                (Quantity::Power, 80.0),
                (Quantity::Battery, 87.0),
                (Quantity::CableTemp, 45.5),
            ],
        ),
        ("id=HY-0013 seq=19 leak=1\r", &[(Quantity::Leak, 1.0)]),
    ];
    for (line, want) in cases {
        let (report, skipped) = n.text_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(skipped, 0, "{line}");
        let mut out = Vec::new();
        v.validate(&report, RECV_NS, &mut out);
        assert_eq!(out.len(), want.len(), "{line}");
        for (r, (q, x)) in out.iter().zip(want.iter()) {
            assert_eq!(r.quantity, *q, "{line}");
            assert!((r.value.as_f64() - x).abs() < 1e-9, "{line}: {:?}", r.value);
        }
    }
    let (r, _) = n
        .text_line("id=HY-0013 seq=30 t=1732500000123 p=1kPa")
        .unwrap();
    assert_eq!(r.ts_ns, Some(TS_MS * 1_000_000));
    assert_eq!(n.text_line("seq=1 p=1kPa"), Err(Reject::MissingSensor));
    assert_eq!(
        n.text_line("id=X seq=1 p=1furlong").map(|r| r.1),
        Err(Reject::NoValues)
    );
}

#[test]
fn serial_binary_frames_are_already_canonical() {
    let n = normalizer();
    let mut v = validator();
    let values = measurements(&[
        (Quantity::Tilt, Value::Float(12.5)),
        (Quantity::Opened, Value::Bool(false)),
        (Quantity::Battery, Value::Int(87)),
    ])
    .unwrap();
    let frame = SensorFrame {
        sensor_id: "MH-0041",
        seq: 17,
        ts_ms: Some(TS_MS as u64),
        values,
    };
    let mut buf = [0u8; 200];
    let len = encode_frame(&frame, &mut buf).unwrap();
    let mut dec: FrameDecoder = FrameDecoder::new();
    let mut out = Vec::new();
    dec.feed(&buf[..len], |f| {
        let report = n.frame(&f.unwrap());
        v.validate(&report, RECV_NS, &mut out);
    });
    let ts = TS_MS * 1_000_000;
    expect(
        &out,
        &[
            ("MH-0041", Quantity::Tilt, 12.5, ts, 0),
            ("MH-0041", Quantity::Opened, 0.0, ts, URGENT),
            ("MH-0041", Quantity::Battery, 87.0, ts, 0),
        ],
    );
}

#[test]
fn validation_marks_quality_and_flags_instead_of_dropping() {
    let n = normalizer();
    let mut v = validator();
    let mut run = |topic: &str, p: &str| {
        edge::normalize::readings_of(&n, &mut v, topic, p.as_bytes(), RECV_NS)
    };
    // Out of range → bad.
    let r = run(
        "sensors/MH-0001/readings",
        r#"{"seq":1,"values":{"battery":140}}"#,
    )
    .unwrap();
    assert_eq!(r[0].quality, Quality::Bad);
    // Implausible jump → suspect; the reference stays at the last good value.
    run(
        "acme/HY-0001/data",
        r#"{"devId":"HY-0001","sn":1,"time":1732500000,"data":{"press_kpa":300}}"#,
    )
    .unwrap();
    let r = run(
        "acme/HY-0001/data",
        r#"{"devId":"HY-0001","sn":2,"time":1732500001,"data":{"press_kpa":3000}}"#,
    )
    .unwrap();
    assert_eq!(r[0].quality, Quality::Suspect);
    let r = run(
        "acme/HY-0001/data",
        r#"{"devId":"HY-0001","sn":3,"time":1732500002,"data":{"press_kpa":310}}"#,
    )
    .unwrap();
    assert_eq!(r[0].quality, Quality::Good);
    // Future timestamp (> 5 min ahead) → receive time + flag.
    let future_ms = RECV_NS / 1_000_000 + 301_000;
    let r = run(
        "sensors/MH-0001/readings",
        &format!(r#"{{"seq":2,"ts":{future_ms},"values":{{"tilt":1}}}}"#),
    )
    .unwrap();
    // MH-0001's first report (seq 1, no time) took the receive millisecond: this one gets the
    // next whole millisecond, so no two share a (sensor, quantity, ts).
    assert_eq!(
        r[0].ts_ns,
        RECV_NS + 1_000_000,
        "receive time, after the earlier stamp"
    );
    assert!(r[0].flags.has(ReadingFlags::TS_FROM_EDGE));
    // Duplicate (sensor, seq) → dropped.
    let r = run(
        "sensors/MH-0001/readings",
        r#"{"seq":2,"values":{"tilt":1}}"#,
    )
    .unwrap();
    assert!(r.is_empty());
    // Unknown sensor → forwarded, flagged.
    let r = run("sensors/XX-9999/readings", r#"{"values":{"tilt":1}}"#).unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].flags.has(ReadingFlags::UNREGISTERED));
}

#[test]
fn malformed_payloads_are_rejected_by_reason() {
    let n = normalizer();
    let mut out = Vec::new();
    let cases: &[(&str, &str, Reject)] = &[
        ("nobody/knows", "{}", Reject::NoProfile),
        ("sensors/MH-0001/readings", "{not json", Reject::Syntax),
        (
            "sensors/MH-0001/readings",
            r#"{"ts":"yesterday","values":{"tilt":1}}"#,
            Reject::BadTimestamp,
        ),
        (
            "sensors/MH-0001/readings",
            r#"{"seq":-1,"values":{"tilt":1}}"#,
            Reject::BadSeq,
        ),
        (
            "sensors/MH-0001/readings",
            r#"{"values":{"nonsense":1}}"#,
            Reject::NoValues,
        ),
        (
            "acme/HY-0001/data",
            r#"{"sn":1,"data":{"tilt_deg":1}}"#,
            Reject::MissingSensor,
        ),
        (
            "gridsense/gw/GW-01/up",
            r#"{"gw":"GW-01","items":"x"}"#,
            Reject::NoValues,
        ),
    ];
    for (topic, payload, want) in cases {
        out.clear();
        assert_eq!(
            n.mqtt(topic, payload.as_bytes(), &mut out),
            Err(*want),
            "{topic} {payload}"
        );
    }
    // A bad value is skipped and counted; the good ones still flow.
    out.clear();
    let skipped = n
        .mqtt(
            "acme/HY-0001/data",
            br#"{"devId":"HY-0001","sn":1,"time":1,"data":{"leak":"MAYBE","tilt_deg":1}}"#,
            &mut out,
        )
        .unwrap();
    assert_eq!((skipped, out[0].values.len()), (1, 1));
}
