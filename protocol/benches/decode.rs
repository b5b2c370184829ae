//! Frames decoded per second from a byte stream: the serial ingest hot path of the edge.
//!
//! `cargo bench -p protocol --bench decode`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol::{
    encode_frame, FrameDecoder, Measurement, Quantity, SensorFrame, Value, MAX_ENCODED_FRAME_BYTES,
};
use std::hint::black_box;

const FRAMES: usize = 10_000;

/// A realistic stream: manhole covers (4 values) and hydrants (3 values) alternating.
fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_ENCODED_FRAME_BYTES + 1];
    for i in 0..FRAMES {
        let id = format!("MH-{:04}", i % 500);
        let mut values = heapless::Vec::new();
        let list: &[(Quantity, Value)] = if i % 2 == 0 {
            &[
                (Quantity::Tilt, Value::Float(1.5 + i as f64 * 1e-3)),
                (Quantity::Opened, Value::Bool(false)),
                (Quantity::WaterLevel, Value::Float(3.25)),
                (Quantity::Battery, Value::Int(87)),
            ]
        } else {
            &[
                (Quantity::Pressure, Value::Float(0.31)),
                (Quantity::Tilt, Value::Float(0.4)),
                (Quantity::Leak, Value::Bool(false)),
            ]
        };
        for &(quantity, value) in list {
            values.push(Measurement { quantity, value }).unwrap();
        }
        let frame = SensorFrame {
            sensor_id: &id,
            seq: i as u32,
            ts_ms: Some(1_732_500_000_000 + i as u64),
            values,
        };
        let n = encode_frame(&frame, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn decode(c: &mut Criterion) {
    let bytes = stream();
    let mut g = c.benchmark_group("serial_stream");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("decode_frames", |b| {
        b.iter(|| {
            let mut dec: FrameDecoder = FrameDecoder::new();
            let mut values = 0usize;
            dec.feed(black_box(&bytes), |r| {
                if let Ok(f) = r {
                    values += f.values.len();
                }
            });
            assert_eq!(dec.stats().frames, FRAMES as u64);
            black_box(values)
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
