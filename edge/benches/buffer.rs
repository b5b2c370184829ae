//! Buffer append + fdatasync throughput: group commit (one fdatasync per N readings) versus
//! one fdatasync per reading, on the real disk under target/.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge::buffer::{Buffer, BufferOptions};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};

fn reading(i: u64) -> Reading {
    Reading {
        sensor: protocol::uplink::SensorId(format!("MH-{:04}", i % 10_000)),
        quantity: Quantity::Tilt,
        value: Value::Float(i as f64),
        ts_ns: 1_732_500_000_000_000_000 + i as i64,
        quality: Quality::Good,
        flags: ReadingFlags::default(),
    }
}

fn benches(c: &mut Criterion) {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-bench");
    std::fs::create_dir_all(&base).unwrap();
    let mut g = c.benchmark_group("buffer_append_fsync");
    for group in [1u64, 64, 1024, 4096] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let mut b = Buffer::open(
            dir.path(),
            BufferOptions {
                buffer_bytes_max: 1 << 30,
                segment_bytes_max: 8 << 20,
            },
        )
        .unwrap();
        let mut i = 0u64;
        g.throughput(Throughput::Elements(group));
        g.bench_function(format!("fdatasync_every_{group}_readings"), |bench| {
            bench.iter(|| {
                for _ in 0..group {
                    b.append(&reading(i)).unwrap();
                    i += 1;
                }
                b.sync_now().unwrap();
                // Keep the disk bounded: ack what was written so segments get deleted.
                while let Some(t) = b.take(5000).unwrap() {
                    b.ack(t.lane, t.end).unwrap();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(buffer, benches);
criterion_main!(buffer);
