//! The embedded store on a real disk: idempotent writes, queries, restart, retention.

use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::{StoredReading, TimeSeriesQuery, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use wangge_testkit::now_ns;

const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;

fn reading(sensor: &str, q: Quantity, ts_ns: i64, v: f64) -> StoredReading {
    StoredReading {
        reading: Reading {
            sensor: sensor.into(),
            quantity: q,
            value: Value::Float(v),
            ts_ns,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        },
        edge_id: "edge-1".into(),
        component_id: None,
        grid_cell: None,
        department: None,
    }
}

fn open(dir: &std::path::Path, retention_days: u32) -> EmbeddedStore {
    EmbeddedStore::open(&EmbeddedConfig {
        data_dir: dir.to_path_buf(),
        retention_days,
        ..Default::default()
    })
    .expect("store opens")
}

#[test]
fn writing_a_reading_twice_stores_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 90);
    let t0 = now_ns() - 3600 * S;
    let rs: Vec<_> = (0..100)
        .map(|i| reading("MH-1", Quantity::Tilt, t0 + i * S, i as f64))
        .collect();
    store.write(&rs).unwrap();
    store.write(&rs).unwrap();
    store.write(&rs[10..20]).unwrap();
    let pts = store
        .points("MH-1", Quantity::Tilt, t0, t0 + 1000 * S, 10_000)
        .unwrap();
    assert_eq!(pts.len(), 100);
    assert!(pts.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
    assert_eq!(pts[5].value, 5.0);
}

#[test]
fn queries_cover_points_downsample_and_latest_across_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 90);
    // 48 h of one reading per minute, crossing at least one UTC day boundary.
    let t0 = (now_ns() - 3 * DAY).div_euclid(60 * S) * 60 * S;
    let rs: Vec<_> = (0..48 * 60)
        .map(|i| {
            reading(
                "FG-1",
                Quantity::WaterLevel,
                t0 + i * 60 * S,
                (i % 60) as f64,
            )
        })
        .collect();
    store.write(&rs).unwrap();
    store
        .write(&[reading("FG-1", Quantity::Battery, t0, 88.0)])
        .unwrap();

    // The 48 hours written, as a query window.
    let (from, to) = (t0, t0 + 48 * 3600 * S);
    let pts = store
        .points("FG-1", Quantity::WaterLevel, from, to, 100_000)
        .unwrap();
    assert_eq!(pts.len(), 48 * 60);
    let limited = store
        .points("FG-1", Quantity::WaterLevel, from, to, 7)
        .unwrap();
    assert_eq!(limited.len(), 7);
    assert_eq!(limited[0].ts_ns, t0);

    // Hourly buckets: each has 60 points with values 0..59.
    let buckets = store
        .downsample("FG-1", Quantity::WaterLevel, from, to, 3600 * S)
        .unwrap();
    assert_eq!(buckets.len(), 48);
    for (i, b) in buckets.iter().enumerate() {
        assert_eq!(b.ts_ns, t0 + i as i64 * 3600 * S);
        assert_eq!((b.min, b.max, b.count), (0.0, 59.0, 60));
        assert!((b.mean - 29.5).abs() < 1e-9);
    }

    let mut latest = store.latest("FG-1").unwrap();
    latest.sort_by_key(|(q, _)| q.code());
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].0, Quantity::WaterLevel);
    assert_eq!(latest[0].1.ts_ns, t0 + (48 * 60 - 1) * 60 * S);
    assert_eq!(latest[1], (Quantity::Battery, pts_point(t0, 88.0)));
    assert!(store
        .points("NOPE", Quantity::Tilt, 0, i64::MAX, 10)
        .unwrap()
        .is_empty());
}

fn pts_point(ts_ns: i64, value: f64) -> hub::timeseries::Point {
    hub::timeseries::Point {
        ts_ns,
        value,
        quality: Quality::Good,
    }
}

#[test]
fn readings_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_ns() - 3600 * S;
    {
        let store = open(dir.path(), 90);
        let rs: Vec<_> = (0..50)
            .map(|i| reading("EL-1", Quantity::Current, t0 + i * S, 1.5))
            .collect();
        store.write(&rs).unwrap();
    }
    let store = open(dir.path(), 90);
    assert_eq!(
        store
            .points("EL-1", Quantity::Current, t0, t0 + 100 * S, 1000)
            .unwrap()
            .len(),
        50
    );
    // New writes after reopening reuse the series and stay idempotent.
    store
        .write(&[reading("EL-1", Quantity::Current, t0, 1.5)])
        .unwrap();
    assert_eq!(
        store
            .points("EL-1", Quantity::Current, t0, t0 + 100 * S, 1000)
            .unwrap()
            .len(),
        50
    );
}

#[test]
fn retention_drops_whole_old_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2);
    let now = now_ns();
    let rs = vec![
        reading("GD-1", Quantity::Gas, now - 10 * DAY, 1.0), // out of retention: not even stored
        reading("GD-1", Quantity::Gas, now - DAY, 2.0),
        reading("GD-1", Quantity::Gas, now - 60 * S, 3.0),
    ];
    store.write(&rs).unwrap();
    assert_eq!(
        store
            .points("GD-1", Quantity::Gas, 0, i64::MAX, 10)
            .unwrap()
            .len(),
        2
    );
    // Three days later both are older than the 2-day retention.
    store.enforce_retention(now + 3 * DAY).unwrap();
    let left = store
        .points("GD-1", Quantity::Gas, 0, i64::MAX, 10)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
