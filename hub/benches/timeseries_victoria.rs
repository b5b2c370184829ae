//! Readings queries on VictoriaMetrics against the embedded store, on the same readings.
//! Prints figures; no assertions. Run: `cargo bench -p hub --bench timeseries_victoria`.
//!
//! Measures (1) `points` of 10 000 raw points (one sensor, one hour at 2.8 Hz) and (2) a
//! 30-day `downsample` at a 1 h step (one sensor, a reading every 10 s: 259 200 points), each
//! the median of several runs, as points/s (points returned by `points`, points aggregated by
//! `downsample`). The readings reach the server through the real InfluxDB v2 sink.

use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::influx::{InfluxConfig, InfluxSink};
use hub::timeseries::victoria::{VictoriaConfig, VictoriaQuery};
use hub::timeseries::{StoredReading, TimeSeriesQuery, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::time::{Duration, Instant};
use wangge_testkit::{http_get, wait_until, VictoriaMetrics};

const MS: i64 = 1_000_000;
const HOUR: i64 = 3_600_000 * MS;
const DAY: i64 = 24 * HOUR;
const RUNS: usize = 7;

fn readings(sensor: &str, t0: i64, every: i64, n: i64) -> Vec<StoredReading> {
    (0..n)
        .map(|i| StoredReading {
            reading: Reading {
                sensor: sensor.into(),
                quantity: Quantity::Tilt,
                value: Value::Float((i % 1000) as f64 * 0.25),
                ts_ns: t0 + i * every,
                quality: Quality::Good,
                flags: ReadingFlags::default(),
            },
            edge_id: "edge-1".into(),
            component_id: Some("3205080101000001".into()),
            grid_cell: Some("grid 1".into()),
            department: Some("water".into()),
        })
        .collect()
}

/// Median wall time of `RUNS` calls of `f`, and what the last call returned.
fn median<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], last.expect("RUNS > 0"))
}

fn report(what: &str, store: &str, points: usize, t: Duration) {
    println!(
        "{what:<34} {store:<9} {points:>8} points  {:>8.1} ms  {:>10.0} points/s",
        t.as_secs_f64() * 1e3,
        points as f64 / t.as_secs_f64()
    );
}

fn main() {
    let vm = VictoriaMetrics::start();
    let (spill, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cfg = InfluxConfig::new(&vm.url(), "wangge", "readings", "token");
    cfg.spill_dir = spill.path().to_path_buf();
    let sink = InfluxSink::start(&cfg).unwrap();
    let embedded = EmbeddedStore::open(&EmbeddedConfig::in_dir(data.path())).unwrap();
    let victoria = VictoriaQuery::new(&VictoriaConfig::new(&vm.url())).unwrap();

    let end = (protocol::time::now_ns() - DAY) / HOUR * HOUR;
    let (raw_from, month_from) = (end - HOUR, end - 30 * DAY);
    let raw = readings("RAW-1", raw_from, 360 * MS, 10_000);
    let month = readings("MONTH-1", month_from, 10_000 * MS, 30 * 8_640);
    let t = Instant::now();
    for chunk in raw.chunks(5000).chain(month.chunks(5000)) {
        embedded.write(chunk).unwrap();
        sink.write(chunk).unwrap();
    }
    wait_until("spill drained", Duration::from_secs(300), || {
        sink.backlog_bytes() == 0
    });
    let _ = http_get(vm.port, "/internal/force_flush");
    println!(
        "wrote {} readings to both stores in {:.1} s",
        raw.len() + month.len(),
        t.elapsed().as_secs_f64()
    );

    let stores: [(&str, &dyn TimeSeriesQuery); 2] =
        [("victoria", &victoria), ("embedded", &embedded)];
    for (name, store) in stores {
        let (t, got) = median(|| {
            store
                .points("RAW-1", Quantity::Tilt, raw_from, end, 10_001)
                .unwrap()
        });
        report("points, 10k raw", name, got.len(), t);
        let (t, got) = median(|| {
            store
                .downsample("MONTH-1", Quantity::Tilt, month_from, end, HOUR)
                .unwrap()
        });
        let n: u64 = got.iter().map(|b| b.count).sum();
        report("downsample, 30 days at 1 h", name, n as usize, t);
    }
}
