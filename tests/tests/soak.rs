//! Soak: many sensors (`firmware-sim load`, default 10 000 sensors × 0.2 reports/s) through a
//! real edge into a real hub for `WANGGE_SOAK_SECONDS` (default 60), sampling the RSS and open
//! files of both processes and the edge's buffer every `WANGGE_SOAK_SAMPLE_SECONDS` (default 2).
//! After warm-up, memory must not keep growing: mean RSS of the last quarter ≤ 1.3 × the mean
//! of the second quarter, for both processes. The series is printed.
//!
//! Long soak (not in CI): `WANGGE_SOAK_SECONDS=600 cargo test -p wangge-tests --test soak --
//! --nocapture` (see RELIABILITY.md).

use std::process::Command;
use std::time::{Duration, Instant};
use wangge_tests::system::{metric_sum, Edge, Hub};
use wangge_tests::{bin, wait_for, Mosquitto, Proc};

/// The hub's bounded caches (broker router 64 MiB + SQLite page cache 64 MiB), KiB.
const HUB_CACHES_KIB: u32 = 128 * 1024;
/// Allowance beyond the caches (allocator, HTTP, events state), KiB.
const HUB_SLACK_KIB: u32 = 32 * 1024;
/// Runs at least this long apply the flatness rule to the hub too (its caches are full by then).
const HUB_WARM_UP_S: u64 = 300;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// VmRSS in KiB of a live process.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t_s: f64,
    edge_rss_kib: u64,
    hub_rss_kib: u64,
    edge_fds: usize,
    hub_fds: usize,
    buffer_records: f64,
    readings_in: f64,
    readings_out: f64,
}

fn mean(xs: &[u64]) -> f64 {
    xs.iter().sum::<u64>() as f64 / xs.len().max(1) as f64
}

#[test]
fn rss_of_edge_and_hub_stays_flat_under_10k_sensors() {
    let secs = env_u64("WANGGE_SOAK_SECONDS", 60);
    let every = env_u64("WANGGE_SOAK_SAMPLE_SECONDS", 2).max(1);
    let sensors = env_u64("WANGGE_SOAK_SENSORS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start().unwrap();
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
        let (Some(er), Some(hr)) = (rss_kib(edge_pid), rss_kib(hub_pid)) else {
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
            edge_fds: open_fds(edge_pid).unwrap_or(0),
            hub_fds: open_fds(hub_pid).unwrap_or(0),
            buffer_records: metric_sum(&m, "edge_buffer_records", &[]),
            readings_in: metric_sum(&m, "edge_readings_in_total", &[]),
            readings_out: metric_sum(&m, "edge_readings_out_total", &[]),
        });
    }
    let _ = wait_for(
        "firmware-sim load to finish",
        Duration::from_secs(60),
        || sim.try_wait(),
    );

    println!("t_s\tedge_rss_kib\thub_rss_kib\tedge_fds\thub_fds\tbuffer_records\treadings_in\treadings_out");
    for s in &samples {
        println!(
            "{:.0}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.t_s,
            s.edge_rss_kib,
            s.hub_rss_kib,
            s.edge_fds,
            s.hub_fds,
            s.buffer_records,
            s.readings_in,
            s.readings_out
        );
    }
    println!("firmware-sim: {}", sim.log_tail(600));
    assert!(samples.len() >= 8, "too few samples: {}", samples.len());
    let last = samples.last().unwrap();
    assert!(
        last.readings_in > 0.0 && last.readings_out > 0.0,
        "readings flowed through the edge"
    );
    let q = samples.len() / 4;
    let second: Vec<_> = samples[q..2 * q].to_vec();
    let fourth: Vec<_> = samples[samples.len() - q..].to_vec();
    let ratio = |f: fn(&Sample) -> u64| {
        let a = mean(&second.iter().map(f).collect::<Vec<_>>());
        let b = mean(&fourth.iter().map(f).collect::<Vec<_>>());
        (a, b)
    };
    let (a, b) = ratio(|s| s.edge_rss_kib);
    println!(
        "edge: mean RSS second quarter {a:.0} KiB, last quarter {b:.0} KiB ({:.2}×)",
        b / a
    );
    assert!(
        b <= 1.3 * a,
        "edge RSS grew after warm-up: {a:.0} → {b:.0} KiB"
    );
    // The hub holds two bounded caches that take minutes to fill at this rate: the embedded
    // broker's router segments (4 × 16 MiB, hub/src/broker/embedded.rs) and the SQLite page
    // cache (`[timeseries] cache_mib`, 64). A short run checks growth stays within them; a run
    // of 5 min or more (past the fill) applies the same flatness rule as for the edge.
    let (a, b) = ratio(|s| s.hub_rss_kib);
    println!(
        "hub: mean RSS second quarter {a:.0} KiB, last quarter {b:.0} KiB ({:.2}×)",
        b / a
    );
    if secs >= HUB_WARM_UP_S {
        assert!(
            b <= 1.3 * a,
            "hub RSS grew after warm-up: {a:.0} → {b:.0} KiB"
        );
    } else {
        let first = samples[0].hub_rss_kib as f64;
        let peak = samples.iter().map(|s| s.hub_rss_kib).max().unwrap_or(0) as f64;
        let bound = first + f64::from(HUB_CACHES_KIB + HUB_SLACK_KIB);
        println!("hub: peak RSS {peak:.0} KiB, bound for a short run {bound:.0} KiB");
        assert!(
            peak <= bound,
            "hub RSS {peak:.0} KiB beyond its first sample {first:.0} + bounded caches"
        );
    }
    let max_fds = samples
        .iter()
        .map(|s| s.edge_fds.max(s.hub_fds))
        .max()
        .unwrap_or(0);
    assert!(max_fds < 1000, "open files stay bounded: max {max_fds}");
    edge.kill9();
    hub.kill9();
}
