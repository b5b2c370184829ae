//! Soak: many sensors (`firmware-sim load`, default 10 000 sensors × 0.2 reports/s × 4
//! quantities ≈ 8 000 readings/s) through a real edge into a real hub for `WANGGE_SOAK_SECONDS`
//! (default 60), sampling every `WANGGE_SOAK_SAMPLE_SECONDS` (default 2): RSS and open files of
//! both processes, the hub's anonymous memory (`smaps_rollup`), the edge's buffer and the
//! readings in, out and stored. The series is printed.
//!
//! **What "no growth after warm-up" means here.** The hub's memory is mostly bounded caches that
//! fill and then stay full: the embedded broker's batches log (`[broker]
//! router_segments_max × router_segment_bytes_max`, 4 × 2 MiB of payload), SQLite's page cache
//! (the time-series writer's `[timeseries] cache_mib` 32, all SQLite memory capped at
//! `cache_mib` + 8 MiB) and smaller ones. At this rate they are full after ≈ 3 min (measured:
//! BENCHMARKS.md "Soak"). The first half of a run is warm-up; over the second half the test fits a
//! least-squares line to each process' RSS and projects it over that half: the growth must stay
//! within 5 % of the half's mean RSS or 4 MiB, whichever is larger. A real leak fails it: the
//! growth this test found after the first fix (ack logs bounded, SQLite still creeping),
//! ≈ 45 KB/s, is 13 MiB over the last 5 min of a 10-min run against ≈ 7 MiB allowed, and the
//! original ≈ 0.3 MiB/s would be 9 MiB over the last 30 s of the 60 s run against 4 MiB; a
//! plateau with allocator noise of a few MiB passes (2.2 MiB measured), and a slope is not
//! fooled by a single spike the way a peak is.
//!
//! - Runs of ≥ 10 min (`HUB_DEFAULTS_MIN_S`) use the hub's default configuration: the long soak
//!   checks the product as shipped; the 5 min of warm-up cover the ≈ 3–4 min its caches take.
//! - Shorter runs (the 60 s CI run) shrink the hub's caches (`SHORT_RUN_HUB_CONFIG`: broker
//!   segments 4 × 512 KiB, `cache_mib` 2) so that they are full within ≈ 15 s: the last 30 s
//!   then see the same growth a leak would show at any cache size, without waiting minutes for
//!   the default caches to fill. What it cannot see: a slow creep (< 4 MiB per 30 s) or one that
//!   only starts after minutes; that is the long soak's job.
//!
//! Long soak (not in CI): `WANGGE_SOAK_SECONDS=600 WANGGE_SOAK_SAMPLE_SECONDS=10 cargo test -p
//! wangge-tests --test soak -- --nocapture` (figures in BENCHMARKS.md "Soak").

use std::process::Command;
use std::time::{Duration, Instant};
use wangge_testkit::{bin, metric_sum, wait_for, Mosquitto, Proc};
use wangge_tests::system::{Edge, Hub};

/// Runs at least this long keep the hub's default cache sizes (their first half must cover the
/// ≈ 3–4 min the default caches take to fill).
const HUB_DEFAULTS_MIN_S: u64 = 600;
/// Hub config for shorter runs: caches small enough to be full after the first quarter.
const SHORT_RUN_HUB_CONFIG: &str = "[broker]\nrouter_segment_bytes_max = 524288\n\
                                    [timeseries]\ncache_mib = 2\n";
/// Allowed growth over the second half, as a fraction of its mean RSS…
const GROWTH_FRACTION_MAX: f64 = 0.05;
/// …or this much, whichever is larger (allocator noise on a small process), KiB.
const GROWTH_FLOOR_KIB: f64 = 4.0 * 1024.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/PID/status` or `/proc/PID/smaps_rollup`, in KiB.
fn proc_kib(pid: u32, file: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The hub's Prometheus text (no token needed), empty if it does not answer.
fn hub_metrics(hub: &Hub) -> String {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()
        .and_then(|c| {
            c.get(format!("http://127.0.0.1:{}/metrics", hub.http))
                .send()
                .ok()
        })
        .and_then(|r| r.text().ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t_s: f64,
    edge_rss_kib: u64,
    hub_rss_kib: u64,
    hub_anon_kib: u64,
    edge_fds: usize,
    hub_fds: usize,
    buffer_records: f64,
    readings_in: f64,
    readings_out: f64,
    hub_stored: f64,
}

/// Growth over the second half of the run projected by a least-squares line, and that half's
/// mean, KiB.
fn second_half_growth(samples: &[Sample], rss: fn(&Sample) -> u64) -> (f64, f64) {
    let half = &samples[samples.len() / 2..];
    let n = half.len() as f64;
    let mt = half.iter().map(|s| s.t_s).sum::<f64>() / n;
    let mr = half.iter().map(|s| rss(s) as f64).sum::<f64>() / n;
    let cov: f64 = half
        .iter()
        .map(|s| (s.t_s - mt) * (rss(s) as f64 - mr))
        .sum();
    let var: f64 = half.iter().map(|s| (s.t_s - mt).powi(2)).sum();
    let span = half.last().unwrap().t_s - half[0].t_s;
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    (slope * span, mr)
}

/// Asserts the flatness rule for one process and prints its figures.
fn assert_flat_after_warm_up(name: &str, samples: &[Sample], rss: fn(&Sample) -> u64) {
    let (growth, mean) = second_half_growth(samples, rss);
    let allowed = (GROWTH_FRACTION_MAX * mean).max(GROWTH_FLOOR_KIB);
    let first = rss(&samples[0]);
    let peak = samples.iter().map(rss).max().unwrap_or(0);
    println!(
        "{name}: RSS first {first} KiB, peak {peak} KiB; second half mean {mean:.0} KiB, \
         fitted growth {growth:.0} KiB (allowed {allowed:.0} KiB)"
    );
    assert!(
        growth <= allowed,
        "{name} RSS grew after warm-up: {growth:.0} KiB over the second half \
         (mean {mean:.0} KiB, allowed {allowed:.0} KiB)"
    );
}

#[test]
fn rss_of_edge_and_hub_stays_flat_under_10k_sensors() {
    let secs = env_u64("WANGGE_SOAK_SECONDS", 60);
    let every = env_u64("WANGGE_SOAK_SAMPLE_SECONDS", 2).max(1);
    let sensors = env_u64("WANGGE_SOAK_SENSORS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let hub_config = if secs >= HUB_DEFAULTS_MIN_S {
        ""
    } else {
        SHORT_RUN_HUB_CONFIG
    };
    println!("soak: {secs} s, {sensors} sensors, hub config extra: {hub_config:?}");
    let mut hub = Hub::prepare(dir.path(), hub_config).unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
    edge.start().unwrap();
    wait_for("the edge to subscribe", Duration::from_secs(30), || {
        edge.metrics()
            .ok()
            .filter(|m| metric_sum(m, "edge_source_up", &[("source", "site")]) == 1.0)
    })
    .unwrap();

    let mut c = Command::new(bin("firmware-sim"));
    c.args(["load", "--sensors", &sensors.to_string(), "--rate", "0.2"])
        .args(["--duration", &format!("{secs}s")])
        .args(["--mqtt", &format!("127.0.0.1:{}", site.port)]);
    let mut sim = Proc::spawn("firmware-sim", c, &dir.path().join("load.log")).unwrap();

    let edge_pid = edge.proc.as_ref().unwrap().pid();
    let hub_pid = hub.proc.as_ref().unwrap().pid();
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(every));
        let m = edge.metrics().unwrap_or_default();
        let hm = hub_metrics(&hub);
        let rss = |pid| proc_kib(pid, "status", "VmRSS:");
        let (Some(er), Some(hr)) = (rss(edge_pid), rss(hub_pid)) else {
            panic!(
                "edge or hub died\nedge: {}\nhub: {}",
                edge.log_tail(),
                hub.log_tail()
            );
        };
        samples.push(Sample {
            t_s: start.elapsed().as_secs_f64(),
            edge_rss_kib: er,
            hub_rss_kib: hr,
            hub_anon_kib: proc_kib(hub_pid, "smaps_rollup", "Anonymous:").unwrap_or(0),
            edge_fds: open_fds(edge_pid).unwrap_or(0),
            hub_fds: open_fds(hub_pid).unwrap_or(0),
            buffer_records: metric_sum(&m, "edge_buffer_records", &[]),
            readings_in: metric_sum(&m, "edge_readings_in_total", &[]),
            readings_out: metric_sum(&m, "edge_readings_out_total", &[]),
            hub_stored: metric_sum(&hm, "wangge_ingest_readings_stored_total", &[]),
        });
    }
    let _ = wait_for(
        "firmware-sim load to finish",
        Duration::from_secs(60),
        || sim.try_wait(),
    );
    // Let the edge's backlog drain, so "stored" below is the whole run.
    let _ = wait_for("the edge buffer to drain", Duration::from_secs(60), || {
        let m = edge.metrics().ok()?;
        (metric_sum(&m, "edge_buffer_records", &[]) == 0.0).then_some(m)
    });
    let edge_in = metric_sum(
        &edge.metrics().unwrap_or_default(),
        "edge_readings_in_total",
        &[],
    );
    let hub_stored = metric_sum(
        &hub_metrics(&hub),
        "wangge_ingest_readings_stored_total",
        &[],
    );

    println!(
        "t_s\tedge_rss_kib\thub_rss_kib\thub_anon_kib\tedge_fds\thub_fds\tbuffer_records\t\
         readings_in\treadings_out\thub_stored"
    );
    for s in &samples {
        println!(
            "{:.0}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.t_s,
            s.edge_rss_kib,
            s.hub_rss_kib,
            s.hub_anon_kib,
            s.edge_fds,
            s.hub_fds,
            s.buffer_records,
            s.readings_in,
            s.readings_out,
            s.hub_stored
        );
    }
    println!("firmware-sim: {}", sim.log_tail(300));
    println!("after drain: edge readings in {edge_in}, hub readings stored {hub_stored}");
    assert!(samples.len() >= 8, "too few samples: {}", samples.len());
    assert!(
        hub_stored > 0.0 && hub_stored >= 0.99 * edge_in,
        "the hub stored what the edge took in: {hub_stored} of {edge_in}"
    );
    assert_flat_after_warm_up("edge", &samples, |s| s.edge_rss_kib);
    assert_flat_after_warm_up("hub", &samples, |s| s.hub_rss_kib);
    let max_fds = samples
        .iter()
        .map(|s| s.edge_fds.max(s.hub_fds))
        .max()
        .unwrap_or(0);
    assert!(max_fds < 1000, "open files stay bounded: max {max_fds}");
    edge.kill9();
    hub.kill9();
}
