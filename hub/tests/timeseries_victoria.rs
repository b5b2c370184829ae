//! Readings queried from a real VictoriaMetrics: the same readings go through the real
//! InfluxDB v2 sink to the server and into an embedded store, and `VictoriaQuery` must answer
//! `points`, `downsample` and `latest` exactly as the embedded store does — resends, limits,
//! empty ranges, tiny response caps included — and a server that is down is an error naming
//! it, within the timeout.

use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::influx::{InfluxConfig, InfluxSink};
use hub::timeseries::victoria::{VictoriaConfig, VictoriaQuery};
use hub::timeseries::{StoredReading, TimeSeriesQuery, TimeSeriesSink, TsError};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::time::{Duration, Instant};
use wangge_testkit::{free_port, http_get, metric_sum, wait_until, VictoriaMetrics as Vm};

const MS: i64 = 1_000_000;
const MIN: i64 = 60_000 * MS;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// One VictoriaMetrics, the sink writing to it, an embedded store fed the same readings, and
/// the query under test.
struct Both {
    vm: Vm,
    sink: InfluxSink,
    embedded: EmbeddedStore,
    victoria: VictoriaQuery,
    /// The server's data (kept over a restart), the spill, the embedded store.
    dirs: (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir),
}

impl Both {
    fn start(tweak: impl FnOnce(&mut VictoriaConfig)) -> Both {
        let dir = || tempfile::tempdir().unwrap();
        let (vm_data, spill, data) = (dir(), dir(), dir());
        let vm = Vm::start_on(vm_data.path(), free_port());
        let mut cfg = InfluxConfig::new(&vm.url(), "wangge", "readings", "token");
        cfg.spill_dir = spill.path().to_path_buf();
        let sink = InfluxSink::start(&cfg).unwrap();
        let embedded = EmbeddedStore::open(&EmbeddedConfig::in_dir(data.path())).unwrap();
        let mut vcfg = VictoriaConfig::new(&vm.url());
        tweak(&mut vcfg);
        let victoria = VictoriaQuery::new(&vcfg).unwrap();
        Both {
            vm,
            sink,
            embedded,
            victoria,
            dirs: (vm_data, spill, data),
        }
    }

    /// Writes `readings` to both stores and returns once the server can answer for them.
    fn write(&self, readings: &[StoredReading]) {
        self.embedded.write(readings).unwrap();
        self.sink.write(readings).unwrap();
        wait_until("spill drained", Duration::from_secs(60), || {
            self.sink.backlog_bytes() == 0
        });
        http_get(self.vm.port, "/internal/force_flush").expect("force_flush answers");
    }

    /// Asks both stores the same `query` and asserts VictoriaMetrics answers what the
    /// embedded store does (`what` names the query); returns the answer's length.
    fn assert_same<T: PartialEq + std::fmt::Debug>(
        &self,
        what: String,
        query: impl Fn(&dyn TimeSeriesQuery) -> Result<Vec<T>, TsError>,
    ) -> usize {
        let want = query(&self.embedded).unwrap();
        let got = query(&self.victoria).unwrap();
        assert_eq!(got, want, "{what}");
        got.len()
    }

    fn assert_points(&self, sensor: &str, q: Quantity, from: i64, to: i64, limit: usize) -> usize {
        self.assert_same(
            format!("points of {sensor} {q:?} [{from}, {to}) limit {limit}"),
            |s| s.points(sensor, q, from, to, limit),
        )
    }

    fn assert_downsample(&self, sensor: &str, q: Quantity, from: i64, to: i64, step: i64) -> usize {
        self.assert_same(
            format!("downsample of {sensor} {q:?} [{from}, {to}) step {step}"),
            |s| s.downsample(sensor, q, from, to, step),
        )
    }

    fn assert_latest(&self, sensor: &str) -> usize {
        let sorted = |mut v: Vec<(Quantity, hub::timeseries::Point)>| {
            v.sort_by_key(|(q, _)| q.code());
            v
        };
        self.assert_same(format!("latest of {sensor}"), |s| {
            s.latest(sensor).map(sorted)
        })
    }
}

/// Millisecond-aligned `t`, ten days ago (inside the embedded store's retention).
fn ten_days_ago() -> i64 {
    (protocol::time::now_ns() - 10 * DAY) / DAY * DAY
}

fn reading(sensor: &str, q: Quantity, ts_ns: i64, value: f64, component: &str) -> StoredReading {
    StoredReading {
        reading: Reading {
            sensor: sensor.into(),
            quantity: q,
            value: Value::Float(value),
            ts_ns,
            quality: [Quality::Good, Quality::Good, Quality::Suspect, Quality::Bad]
                [(ts_ns / MS % 4) as usize],
            flags: ReadingFlags::default(),
        },
        edge_id: "edge-1".into(),
        component_id: Some(component.into()),
        grid_cell: Some("grid 1".into()),
        department: Some("water,supply".into()),
    }
}

/// [`series`] of tilt, one reading a second.
fn tilt_every_second(sensor: &str, t0: i64, n: i64, component: &str) -> Vec<StoredReading> {
    series(sensor, Quantity::Tilt, t0, 1000 * MS, n, component)
}

/// `n` readings of `sensor`'s `q` every `every` from `t0` at irregular milliseconds, values
/// multiples of 0.25 (sums exact in any order, so means compare exactly).
fn series(
    sensor: &str,
    q: Quantity,
    t0: i64,
    every: i64,
    n: i64,
    component: &str,
) -> Vec<StoredReading> {
    let mut x: u64 = 0x9e37_79b9 ^ sensor.len() as u64;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let jitter = ((x >> 33) % 997) as i64 * MS;
            let value = ((x >> 40) % 4000) as f64 * 0.25 - 300.0;
            reading(sensor, q, t0 + i * every + jitter, value, component)
        })
        .collect()
}

#[test]
fn points_downsample_and_latest_answer_as_the_embedded_store_does() {
    let both = Both::start(|_| {});
    let t0 = ten_days_ago();
    let mut all = Vec::new();
    // Three days across UTC day boundaries; MH-2 is reassigned to another component halfway
    // (other tags: other series in VictoriaMetrics, one series in the embedded store).
    all.extend(series(
        "MH-1",
        Quantity::Tilt,
        t0,
        5 * MIN,
        864,
        "3205080101000001",
    ));
    all.extend(series(
        "MH-1",
        Quantity::WaterLevel,
        t0,
        7 * MIN,
        600,
        "3205080101000001",
    ));
    all.extend(series(
        "MH-2",
        Quantity::Tilt,
        t0,
        10 * MIN,
        216,
        "3205080101000002",
    ));
    all.extend(series(
        "MH-2",
        Quantity::Tilt,
        t0 + 36 * HOUR + 3 * MS,
        10 * MIN,
        216,
        "3205080101000009",
    ));
    both.write(&all);

    let end = t0 + 4 * DAY;
    // The last: the limit keeps the oldest points (the server's answer has them all).
    for (sensor, limit, n) in [
        ("MH-1", 10_000, 864),
        ("MH-2", 10_000, 432),
        ("MH-1", 100, 100),
    ] {
        let got = both.assert_points(sensor, Quantity::Tilt, t0, end, limit);
        assert_eq!(got, n, "{sensor} limit {limit}");
    }
    // Bounds inside a millisecond, and a sub-range.
    let (a, b) = (t0 + 3 * HOUR + 1, t0 + 40 * HOUR + 999_999);
    assert!(both.assert_points("MH-1", Quantity::WaterLevel, a, b, 10_000) > 100);
    for step in [HOUR, 7 * MIN + 13, DAY] {
        assert!(both.assert_downsample("MH-1", Quantity::Tilt, t0, end, step) > 2);
        assert!(both.assert_downsample("MH-2", Quantity::Tilt, a, b, step) > 0);
    }
    assert_eq!(both.assert_latest("MH-1"), 2);
    assert_eq!(both.assert_latest("MH-2"), 1);
}

#[test]
fn a_resent_batch_stores_no_duplicate_point() {
    let both = Both::start(|_| {});
    let t0 = ten_days_ago();
    let batch = tilt_every_second("MH-7", t0, 500, "3205080101000007");
    both.write(&batch);
    // The same batch again, as after a hub crash before its ack.
    both.write(&batch);
    let end = t0 + DAY;
    assert_eq!(
        both.assert_points("MH-7", Quantity::Tilt, t0, end, 10_000),
        500
    );
    assert_eq!(
        both.assert_downsample("MH-7", Quantity::Tilt, t0, end, 60_000 * MS),
        9
    );
    assert_eq!(both.assert_latest("MH-7"), 1);
}

#[test]
fn readings_within_one_millisecond_are_one_point_on_the_server() {
    let both = Both::start(|_| {});
    let t0 = ten_days_ago() + 5 * MS;
    let c = "3205080101000008";
    let q = Quantity::Tilt;
    both.write(&[
        reading("MH-8", q, t0 + 1, 1.0, c),
        reading("MH-8", q, t0 + 2, 2.0, c),
    ]);
    // The embedded store keeps nanoseconds; the server keeps (sensor, quantity, ts_ms), one
    // point there, at the whole millisecond, with the larger value (its dedup's choice).
    assert_eq!(
        both.embedded
            .points("MH-8", q, t0, t0 + MS, 10)
            .unwrap()
            .len(),
        2
    );
    let got = both.victoria.points("MH-8", q, t0, t0 + MS, 10).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].ts_ns, got[0].value), (t0, 2.0));
}

/// Exports the server answered so far (its `/metrics` text is refreshed once a second).
fn exports_answered(vm: &Vm) -> f64 {
    std::thread::sleep(Duration::from_millis(1500));
    let text = http_get(vm.port, "/metrics").unwrap_or_default();
    metric_sum(
        &text,
        "vm_http_requests_total",
        &[("path", "/api/v1/export")],
    )
}

#[test]
fn the_limit_keeps_the_oldest_points_even_when_every_response_must_be_small() {
    // 4 KiB per response: the 2000 points come in many windows.
    let both = Both::start(|c| c.response_bytes_max = 4096);
    let t0 = ten_days_ago();
    both.write(&tilt_every_second("MH-3", t0, 2000, "3205080101000003"));
    let end = t0 + DAY;
    let before = exports_answered(&both.vm);
    assert_eq!(
        both.assert_points("MH-3", Quantity::Tilt, t0, end, 10_000),
        2000
    );
    let asked = exports_answered(&both.vm) - before;
    assert!(
        asked > 10.0,
        "2000 points in {asked} exports of at most 4 KiB"
    );
    for (limit, n) in [(1, 1), (777, 777), (10_000, 2000)] {
        let got = both.assert_points("MH-3", Quantity::Tilt, t0, end, limit);
        assert_eq!(got, n, "limit {limit}");
    }
    assert!(both.assert_downsample("MH-3", Quantity::Tilt, t0, end, 90_000 * MS) > 20);
    assert_eq!(both.assert_latest("MH-3"), 1);
}

#[test]
fn an_empty_range_an_unknown_sensor_and_a_zero_limit_answer_nothing() {
    let both = Both::start(|_| {});
    let t0 = ten_days_ago();
    both.write(&tilt_every_second("MH-4", t0, 50, "3205080101000004"));
    let q = Quantity::Tilt;
    assert_eq!(both.assert_points("MH-4", q, t0, t0, 100), 0);
    assert_eq!(both.assert_points("MH-4", q, t0 + MS, t0, 100), 0);
    assert_eq!(both.assert_points("MH-4", q, t0 - DAY, t0 - HOUR, 100), 0);
    assert_eq!(both.assert_points("MH-4", q, t0, t0 + DAY, 0), 0);
    assert_eq!(
        both.assert_points("MH-4", Quantity::WaterLevel, t0, t0 + DAY, 100),
        0
    );
    assert_eq!(both.assert_points("nobody", q, t0, t0 + DAY, 100), 0);
    assert_eq!(
        both.assert_downsample("MH-4", q, t0 + DAY, t0 + 2 * DAY, HOUR),
        0
    );
    assert_eq!(both.assert_downsample("nobody", q, t0, t0 + DAY, HOUR), 0);
    assert_eq!(both.assert_latest("nobody"), 0);
    assert!(both
        .victoria
        .downsample("MH-4", q, t0, t0 + DAY, 0)
        .is_err());
    // And the data is there, so the empty answers above are not an empty server.
    assert_eq!(both.assert_points("MH-4", q, t0, t0 + DAY, 100), 50);
}

/// Asserts `query` fails within `within`, as Unavailable, naming `port` and no password.
fn assert_fails_fast(query: &VictoriaQuery, port: u16, within: Duration) {
    let t = Instant::now();
    let err = query
        .points("MH-1", Quantity::Tilt, 0, 10 * DAY, 100)
        .unwrap_err();
    assert!(t.elapsed() < within, "took {:?}", t.elapsed());
    assert!(matches!(err, TsError::Unavailable(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(query.latest("MH-1").is_err());
    assert!(query
        .downsample("MH-1", Quantity::Tilt, 0, DAY, HOUR)
        .is_err());
}

#[test]
fn a_server_that_is_down_or_mute_is_an_error_naming_it_not_a_hang() {
    // Nothing listening.
    let port = free_port();
    let mut cfg = VictoriaConfig::new(&format!("http://hub:s3cret@127.0.0.1:{port}"));
    cfg.request_timeout_ms = 1000;
    let down = VictoriaQuery::new(&cfg).unwrap();
    assert!(!down.describe().contains("s3cret"), "{}", down.describe());
    assert_fails_fast(&down, port, Duration::from_secs(5));
    // Listening, never answering (the kernel accepts the connection; nobody reads it).
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port();
    cfg.url = format!("http://hub:s3cret@127.0.0.1:{port}");
    assert_fails_fast(
        &VictoriaQuery::new(&cfg).unwrap(),
        port,
        Duration::from_secs(5),
    );
    // A server that goes away after answering, and comes back.
    let both = Both::start(|c| c.request_timeout_ms = 1000);
    let t0 = ten_days_ago();
    both.write(&tilt_every_second("MH-5", t0, 10, "3205080101000005"));
    assert_eq!(
        both.assert_points("MH-5", Quantity::Tilt, t0, t0 + DAY, 100),
        10
    );
    let port = both.vm.port;
    let Both {
        vm, victoria, dirs, ..
    } = both;
    vm.stop();
    assert_fails_fast(&victoria, port, Duration::from_secs(5));
    let _vm = Vm::start_on(dirs.0.path(), port);
    assert_eq!(
        victoria
            .points("MH-5", Quantity::Tilt, t0, t0 + DAY, 100)
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn a_bad_url_is_refused_at_construction_with_an_example() {
    for url in ["not a url", "ftp://127.0.0.1:8428", "unix:/tmp/vm.sock"] {
        let err = VictoriaQuery::new(&VictoriaConfig::new(url)).err().unwrap();
        assert!(
            err.to_string().contains("http://127.0.0.1:8428"),
            "{url}: {err}"
        );
    }
}

/// Data completeness in a cluster counts reports from the server: the same counts and first
/// reports as the embedded store, whatever the window (day boundaries, partial days, empty).
#[test]
fn report_counts_and_first_reports_answer_as_the_embedded_store_does() {
    use hub::timeseries::report_counts::ReportCounts;
    let b = Both::start(|_| {});
    let t0 = ten_days_ago();
    // MH-7 reports tilt and battery together (one report, two points); HY-22 pressure alone,
    // from an hour later; a window must count each report once.
    let mut rs = series("MH-7", Quantity::Tilt, t0, 10 * MIN, 400, "c1");
    rs.extend(series("MH-7", Quantity::Battery, t0, 10 * MIN, 400, "c1"));
    rs.extend(series(
        "HY-22",
        Quantity::Pressure,
        t0 + HOUR,
        7 * MIN,
        500,
        "c2",
    ));
    b.write(&rs);
    let now = protocol::time::now_ns();
    let (vm, emb): (&dyn ReportCounts, &dyn ReportCounts) = (&b.victoria, &b.embedded);
    for (from, to) in [
        (t0, now),
        (t0 + 3 * HOUR + 17 * MS, t0 + DAY + 5 * HOUR),
        (t0 + DAY, t0 + 2 * DAY),
        (t0 - DAY, t0),
    ] {
        let want = emb.report_counts(from, to, now).unwrap();
        let got = vm.report_counts(from, to, now).unwrap();
        let nonzero = |m: std::collections::HashMap<String, u64>| {
            m.into_iter()
                .filter(|(_, n)| *n > 0)
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(nonzero(got), nonzero(want), "reports in [{from}, {to})");
        assert_eq!(
            vm.report_count("HY-22", from, to).unwrap(),
            emb.report_count("HY-22", from, to).unwrap(),
            "reports of HY-22 in [{from}, {to})"
        );
    }
    assert_eq!(emb.report_counts(t0, now, now).unwrap()["MH-7"], 400);
    let sorted = |m: std::collections::HashMap<String, i64>| {
        m.into_iter().collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        sorted(vm.first_reports(now).unwrap()),
        sorted(emb.first_reports(now).unwrap())
    );
}
