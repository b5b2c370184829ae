//! Normalization throughput per dialect: profile lookup + unit conversion + validation
//! (dedup, range, jump, timestamp), on one core. Reported as readings/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge::normalize::profile::{mask_of, Profile};
use edge::normalize::validate::Validator;
use edge::normalize::Normalizer;
use protocol::{encode_frame, measurements, FrameDecoder, Quantity, SensorFrame, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn normalizer() -> Normalizer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let profiles = Profile::load_dir(&dir).unwrap();
    Normalizer::new(profiles, HashMap::new(), mask_of(Quantity::Alarm))
}

fn validator() -> Validator {
    let reg: HashSet<String> = (0..10_000).map(|i| format!("S-{i:05}")).collect();
    Validator::new(reg, 300_000, 0)
}

const RECV: i64 = 1_732_500_100_000_000_000;

fn bench_json(c: &mut Criterion, name: &str, readings: u64, msg: impl Fn(u64) -> (String, String)) {
    let n = normalizer();
    let mut v = validator();
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(readings));
    let msgs: Vec<_> = (0..4096).map(&msg).collect();
    let mut i = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            let (topic, payload) = &msgs[i % msgs.len()];
            i += 1;
            if i.is_multiple_of(msgs.len()) {
                // Fresh dedup state each lap so the repeated seqs are not dropped.
                v = validator();
            }
            let mut reports = Vec::with_capacity(8);
            n.mqtt(topic, payload.as_bytes(), &mut reports).unwrap();
            let mut out = Vec::with_capacity(readings as usize);
            for r in &reports {
                v.validate(r, RECV, &mut out);
            }
            criterion::black_box(out);
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_json(c, "canonical_4_values", 4, |k| {
        (
            format!("sensors/S-{:05}/readings", k % 1000),
            format!(
                r#"{{"ts":{},"seq":{k},"values":{{"tilt":{}.5,"opened":false,"water_level":3.0,"battery":87}}}}"#,
                1_732_500_000_000u64 + k,
                k % 30
            ),
        )
    });
    bench_json(c, "acme_3_values", 3, |k| {
        (
            format!("acme/S-{:05}/data", k % 1000),
            format!(
                r#"{{"devId":"S-{:05}","sn":{k},"time":1732500000,"data":{{"press_kpa":312.5,"tilt_deg":1.2,"leak":"OFF"}}}}"#,
                k % 1000
            ),
        )
    });
    bench_json(c, "lumen_4_values", 4, |k| {
        (
            format!("lumen/v2/telemetry/S-{:05}", k % 1000),
            format!(
                r#"{{"device":"S-{:05}","cnt":{k},"U":229.8,"I_mA":350.0,"P":80.4,"lamp":1}}"#,
                k % 1000
            ),
        )
    });
    bench_json(c, "gridsense_10_items_40_values", 40, |k| {
        let items: Vec<String> = (0..10)
            .map(|j| format!(r#"{{"sid":"S-{:05}","seq":{k},"m":{{"angle":2.5,"open":0,"lvl":4.0,"bat":90}}}}"#, (k * 10 + j) % 10_000))
            .collect();
        (
            "gridsense/gw/GW-01/up".into(),
            format!(
                r#"{{"gw":"GW-01","ts":"2024-11-25T02:00:00.123Z","items":[{}]}}"#,
                items.join(",")
            ),
        )
    });

    let n = normalizer();
    let mut v = validator();
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(3));
    let lines: Vec<String> = (0..4096)
        .map(|k| {
            format!(
                "id=S-{:05} seq={k} t=1732500000123 p=312.5kPa tilt=1.2deg leak=0",
                k % 1000
            )
        })
        .collect();
    let mut i = 0;
    g.bench_function("serial_text_3_values", |b| {
        b.iter(|| {
            let (r, _) = n.text_line(&lines[i % lines.len()]).unwrap();
            i += 1;
            let mut out = Vec::with_capacity(3);
            v.validate(&r, RECV, &mut out);
            criterion::black_box(out);
        })
    });
    let mut wire = Vec::new();
    for k in 0..4096u32 {
        let values = measurements(&[
            (Quantity::Tilt, Value::Float(1.5)),
            (Quantity::Opened, Value::Bool(false)),
            (Quantity::Battery, Value::Int(87)),
        ])
        .unwrap();
        let id = format!("S-{:05}", k % 1000);
        let f = SensorFrame {
            sensor_id: &id,
            seq: k,
            ts_ms: Some(1_732_500_000_123),
            values,
        };
        let mut buf = [0u8; 200];
        let len = encode_frame(&f, &mut buf).unwrap();
        wire.extend_from_slice(&buf[..len]);
    }
    g.throughput(Throughput::Elements(4096 * 3));
    g.bench_function("serial_binary_4096_frames_3_values", |b| {
        b.iter(|| {
            let mut dec: FrameDecoder = FrameDecoder::new();
            let mut v = validator();
            let mut out = Vec::with_capacity(4096 * 3);
            dec.feed(&wire, |f| {
                if let Ok(f) = f {
                    let r = n.frame(&f);
                    v.validate(&r, RECV, &mut out);
                }
            });
            criterion::black_box(out);
        })
    });
    g.finish();
}

criterion_group!(normalize, benches);
criterion_main!(normalize);
