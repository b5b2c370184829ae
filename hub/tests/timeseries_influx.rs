//! The InfluxDB v2 sink against a real VictoriaMetrics process, including an outage, a `kill -9`
//! of the server right after it acknowledged, and a restart no request saw.

use hub::timeseries::influx::{InfluxConfig, InfluxMetrics, InfluxSink};
use hub::timeseries::{StoredReading, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use wangge_testkit::{free_port, http_get, now_ms, wait_until, VictoriaMetrics as Vm};

const S: i64 = 1_000_000_000;

/// Where a test's VictoriaMetrics keeps its data (kept over its restarts, on one port) and
/// where the sink spills.
struct Dirs {
    vm_data: tempfile::TempDir,
    spill: tempfile::TempDir,
    port: u16,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            vm_data: tempfile::tempdir().unwrap(),
            spill: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    /// Fresh dirs, the server started on them, and [`Dirs::batched_cfg`] as `tweak` adjusts it.
    fn started(tweak: impl FnOnce(&mut InfluxConfig)) -> (Dirs, Vm, InfluxConfig) {
        let dirs = Dirs::new();
        let vm = dirs.start_vm();
        let mut cfg = dirs.batched_cfg();
        tweak(&mut cfg);
        (dirs, vm, cfg)
    }

    /// (Re)starts the server on the same data and port.
    fn start_vm(&self) -> Vm {
        Vm::start_on(self.vm_data.path(), self.port)
    }

    /// A sink config for the server (token `token`), spilling to `spill`, posting batches of
    /// 1000 lines.
    fn batched_cfg(&self) -> InfluxConfig {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut cfg = spilling_to(&url, "token", self.spill.path());
        cfg.batch_size = 1000;
        cfg
    }
}

/// A sink config for `url` (org `wangge`, bucket `readings`) that spills to `spill`.
fn spilling_to(url: &str, token: &str, spill: &std::path::Path) -> InfluxConfig {
    let mut cfg = InfluxConfig::new(url, "wangge", "readings", token);
    cfg.spill_dir = spill.to_path_buf();
    cfg
}

/// Asserts the sink's Prometheus text contains `needle`.
fn assert_rendered(metrics: &InfluxMetrics, needle: &str) {
    let mut text = String::new();
    metrics.render_prometheus(&mut text);
    assert!(text.contains(needle), "{text}");
}

fn wait_drained(sink: &InfluxSink) {
    wait_until("spill drained", Duration::from_secs(60), || {
        sink.backlog_bytes() == 0
    });
}

/// (sensor, ts) of every exported `tilt_value` sample, and how many samples in total.
fn exported(port: u16) -> (HashSet<(String, i64)>, usize) {
    let _ = http_get(port, "/internal/force_flush");
    let body = http_get(port, "/api/v1/export?match[]=tilt_value").unwrap_or_default();
    let mut set = HashSet::new();
    let mut total = 0;
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
        let sensor = v["metric"]["sensor"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for ts in v["timestamps"].as_array().into_iter().flatten() {
            total += 1;
            set.insert((sensor.clone(), ts.as_i64().unwrap_or_default()));
        }
    }
    (set, total)
}

fn group(g: i64, t0: i64, n: i64) -> Vec<StoredReading> {
    (0..n)
        .map(|i| StoredReading {
            reading: Reading {
                sensor: format!("MH-{:04}", i % 50).as_str().into(),
                quantity: Quantity::Tilt,
                value: Value::Float((g * n + i) as f64),
                // Millisecond timestamps (VictoriaMetrics keeps ms), distinct per (sensor, ts).
                ts_ns: t0 + (g * n + i) * 1_000_000,
                quality: Quality::Good,
                flags: ReadingFlags::default(),
            },
            edge_id: "edge-1".into(),
            component_id: Some(format!("32050801010000{:02}", i % 50)),
            grid_cell: Some("grid 1".into()),
            department: Some("water,supply".into()),
        })
        .collect()
}

#[test]
fn an_outage_of_the_server_loses_nothing_and_duplicates_nothing() {
    let (dirs, vm, cfg) = Dirs::started(|cfg| cfg.retry_backoff_ms_max = 500);
    let sink = InfluxSink::start(&cfg).unwrap();
    let metrics = sink.metrics();
    let (groups, n) = (20i64, 1000i64);
    let t0 = hour_ago_ms_aligned();

    write_groups(&sink, 0..5, t0, n);
    wait_counted("first 5000 points sent", &metrics.points_sent, 5000);
    // The server goes away mid-stream; writes still succeed (spilled durably).
    vm.stop();
    write_groups(&sink, 5..15, t0, n);
    // A resend of an earlier group (as after a hub crash before its ack).
    sink.write(&group(2, t0, n)).unwrap();
    wait_counted("the drain notices the outage", &metrics.posts_failed, 1);
    assert!(sink.backlog_bytes() > 0, "readings wait in the spill");
    // The server returns (same data, same port).
    let vm = dirs.start_vm();
    write_groups(&sink, 15..groups, t0, n);
    assert_exactly_once(&vm, &sink, (groups * n) as usize);
    assert_rendered(&metrics, "wangge_influx_spill_backlog_bytes 0");
}

#[test]
fn spilled_readings_are_sent_by_the_next_process() {
    let dirs = Dirs::new();
    let url = format!("http://127.0.0.1:{}", dirs.port);
    let mut cfg = spilling_to(&url, "t", dirs.spill.path());
    cfg.retry_backoff_ms_max = 300;
    let t0 = (now_ms() - 7_200_000) * 1_000_000;
    {
        // No server at all: everything stays in the spill when the hub stops.
        let sink = InfluxSink::start(&cfg).unwrap();
        sink.write(&group(0, t0, 3000)).unwrap();
        assert!(sink.backlog_bytes() > 0);
    }
    let vm = dirs.start_vm();
    let sink = InfluxSink::start(&cfg).unwrap();
    // The spilled readings are delivered after the restart.
    assert_exactly_once(&vm, &sink, 3000);
}

#[test]
fn a_torn_spill_tail_from_a_crash_is_cut_and_the_rest_delivered() {
    let dirs = Dirs::new();
    let vm = dirs.start_vm();
    let t0 = (now_ms() - 600_000) * 1_000_000;
    // Two whole lines and half of a third, as a crash in the middle of an append leaves them
    // (that write was never fsynced, so never acked).
    let mut body = String::new();
    for r in group(0, t0, 3) {
        hub::timeseries::influx::line_of(&mut body, &r);
    }
    let cut = body.len() - 20;
    std::fs::write(dirs.spill.path().join("0000000000000001.lp"), &body[..cut]).unwrap();
    let cfg = spilling_to(&vm.url(), "t", dirs.spill.path());
    let sink = InfluxSink::start(&cfg).unwrap();
    // The two whole lines are delivered, the torn one is not.
    assert_exactly_once(&vm, &sink, 2);
    assert_eq!(counter(&sink.metrics().lines_rejected), 0);
}

fn hour_ago_ms_aligned() -> i64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - 3600 * S)
        / 1_000_000
        * 1_000_000
}

/// Writes groups `gs` of `n` readings from `t0` (each accepted by the sink).
fn write_groups(sink: &InfluxSink, gs: std::ops::Range<i64>, t0: i64, n: i64) {
    for g in gs {
        sink.write(&group(g, t0, n)).unwrap();
    }
}

/// Writes groups `0..groups` of `n` readings from `t0`; waits until the server acknowledged all.
fn write_acknowledged(sink: &InfluxSink, groups: i64, t0: i64, n: i64) {
    write_groups(sink, 0..groups, t0, n);
    let total = groups * n;
    let what = format!("{total} points acknowledged by the server");
    wait_counted(&what, &sink.metrics().points_sent, total as u64);
}

fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits (60 s at most) until the sink's counter `c` reached `at_least`.
fn wait_counted(what: &str, c: &std::sync::atomic::AtomicU64, at_least: u64) {
    wait_until(what, Duration::from_secs(60), || counter(c) >= at_least);
}

/// Waits until VictoriaMetrics exports `want` distinct readings (or nothing more arrives for
/// 30 s with the spill drained), then checks each is there exactly once.
fn assert_exactly_once(vm: &Vm, sink: &InfluxSink, want: usize) {
    let (mut seen, mut since) = (usize::MAX, Instant::now());
    wait_until(
        "every reading readable in VictoriaMetrics",
        Duration::from_secs(180),
        || {
            let n = exported(vm.port).0.len();
            if n != seen {
                eprintln!("exported {n} of {want}");
                (seen, since) = (n, Instant::now());
            }
            n >= want || (sink.backlog_bytes() == 0 && since.elapsed() > Duration::from_secs(30))
        },
    );
    wait_drained(sink);
    let (set, total) = exported(vm.port);
    assert_eq!(
        set.len(),
        want,
        "{} of {want} readings missing from the server",
        want.saturating_sub(set.len())
    );
    assert_eq!(total, want, "each reading exactly once");
}

#[test]
fn a_kill_9_of_the_server_right_after_it_acknowledged_loses_nothing_and_duplicates_nothing() {
    let (dirs, vm, cfg) = Dirs::started(|cfg| cfg.retry_backoff_ms_max = 500);
    assert_eq!(cfg.replay_window_ms, 30_000, "the default window");
    let sink = InfluxSink::start(&cfg).unwrap();
    let metrics = sink.metrics();
    let (t0, n) = (hour_ago_ms_aligned(), 1000i64);

    write_acknowledged(&sink, 5, t0, n);
    // The server answers queries with them: it has them, in memory.
    assert_eq!(exported(vm.port).0.len(), 5000);
    std::thread::sleep(Duration::from_secs(1));
    vm.kill9();
    // Writes go on into the spill; the drain sees its POSTs fail.
    write_groups(&sink, 5..10, t0, n);
    wait_counted(
        "the drain notices the server is gone",
        &metrics.posts_failed,
        1,
    );
    let vm = dirs.start_vm();
    write_groups(&sink, 10..15, t0, n);
    assert_exactly_once(&vm, &sink, 15 * n as usize);
    let (replays, lines) = (counter(&metrics.replays), counter(&metrics.replayed_lines));
    eprintln!("replays: {replays}, replayed lines: {lines}");
    assert!(replays >= 1, "the failure triggered a replay");
    assert!(
        lines >= 5000,
        "the 5000 acknowledged lines were sent again ({lines})"
    );
    assert_rendered(&metrics, "wangge_influx_replayed_lines_total");
}

#[test]
fn a_server_restarted_while_the_sink_was_idle_is_noticed_and_the_window_sent_again() {
    // A window shorter than the default so the test does not wait 30 s for the restart check.
    let (dirs, vm, cfg) = Dirs::started(|cfg| cfg.replay_window_ms = 8_000);
    let sink = InfluxSink::start(&cfg).unwrap();
    let metrics = sink.metrics();
    let (t0, n) = (hour_ago_ms_aligned(), 1000i64);

    write_acknowledged(&sink, 3, t0, n);
    // The sink reads the server's start time right after the first acknowledgement; the new
    // process must start in a later second (`process_start_time_seconds` is whole seconds).
    std::thread::sleep(Duration::from_millis(1500));
    vm.kill9();
    let vm = dirs.start_vm();
    // Nothing is written meanwhile: no request fails, only the start time can tell.
    let what = "the restart noticed by the server's start time";
    wait_counted(what, &metrics.restarts_detected, 1);
    assert_eq!(counter(&metrics.replays), 1);
    write_groups(&sink, 3..6, t0, n);
    assert_exactly_once(&vm, &sink, 6 * n as usize);
    eprintln!(
        "restarts detected: {}, replays: {}, replayed lines: {}, failed posts: {}",
        counter(&metrics.restarts_detected),
        counter(&metrics.replays),
        counter(&metrics.replayed_lines),
        counter(&metrics.posts_failed)
    );
    assert!(counter(&metrics.replayed_lines) >= 3000);
}

#[test]
fn a_restarted_sink_sends_the_window_of_the_process_before_it_again() {
    let (dirs, vm, cfg) = Dirs::started(|cfg| cfg.retry_backoff_ms_max = 500);
    let (t0, n) = (hour_ago_ms_aligned(), 1000i64);
    {
        let sink = InfluxSink::start(&cfg).unwrap();
        write_acknowledged(&sink, 3, t0, n);
        // The hub stops (or dies) inside the window; then the server dies before its flush.
    }
    vm.kill9();
    let vm = dirs.start_vm();
    let sink = InfluxSink::start(&cfg).unwrap();
    assert!(
        sink.backlog_bytes() > 0,
        "the next process starts from the settled position, before the window"
    );
    write_groups(&sink, 3..5, t0, n);
    assert_exactly_once(&vm, &sink, 5 * n as usize);
}
