//! End-to-end bench (a binary, not a timed test): site mosquitto → real `edge` (release) →
//! hub mosquitto → acking stub. Gateway messages (GridSense, 10 sensors × 4 values each)
//! from 10,000 distinct sensors, durability on (group commit). Prints readings/s from the
//! first publish to the last reading acked into the stub, and the edge's peak RSS.
//!
//!     cargo bench -p edge --bench e2e            # E2E_READINGS=400000 to change the volume

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: u64 = std::env::var("E2E_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let sensors = 10_000u64;
    let per_msg = 40u64;
    let msgs = total / per_msg;
    let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap();
    let site = broker();
    let hub = broker();
    let store = Arc::new(Mutex::new(Store::default()));
    let _stub = HubStub::start(hub.port, store.clone());
    let cfg = EdgeConfig::new(site.port, hub.port, dir.path(), "");
    let edge = EdgeProc::start(dir.path(), &cfg, "bench");
    wait_until("site source up", Duration::from_secs(20), || {
        edge.source_up("site")
    });
    let pid = edge.pid();
    let rss_idle = rss_kb(pid, "VmRSS:");

    let payloads: Vec<(String, Vec<u8>)> = (0..msgs)
        .map(|k| {
            let items: Vec<String> = (0..10)
                .map(|j| {
                    let s = (k * 10 + j) % sensors;
                    format!(r#"{{"sid":"S-{s:05}","seq":{k},"m":{{"angle":2.5,"open":0,"lvl":4.0,"bat":90}}}}"#)
                })
                .collect();
            // Distinct timestamp per message so every reading is a distinct (sensor, quantity, ts).
            let ms = k % 1000;
            let s = k / 1000;
            let ts = format!("2024-11-25T{:02}:{:02}:{:02}.{ms:03}Z", s / 3600 % 24, s / 60 % 60, s % 60);
            (
                format!("gridsense/gw/GW-{:02}/up", k % 8),
                format!(r#"{{"gw":"GW-01","ts":"{ts}","items":[{}]}}"#, items.join(",")).into_bytes(),
            )
        })
        .collect();
    let mut p = Publisher::connect(site.port);
    let t0 = Instant::now();
    let mut peak = rss_idle;
    for (i, (topic, payload)) in payloads.into_iter().enumerate() {
        p.publish(&topic, payload);
        if i % 2000 == 0 {
            peak = peak.max(rss_kb(pid, "VmRSS:"));
        }
    }
    p.flush();
    let t_pub = t0.elapsed();
    wait_until(
        "all readings acked into the stub",
        Duration::from_secs(300),
        || {
            peak = peak.max(rss_kb(pid, "VmRSS:"));
            store.lock().unwrap().readings.len() as u64 >= msgs * per_msg
        },
    );
    let t = t0.elapsed();
    let st = store.lock().unwrap();
    let unique = st.unique();
    println!(
        "end-to-end: {} readings ({} msgs × {per_msg}, {sensors} sensors) in {:.2} s = {:.0} readings/s (publishing took {:.2} s = {:.0} readings/s offered); unique stored {unique}",
        msgs * per_msg,
        msgs,
        t.as_secs_f64(),
        (msgs * per_msg) as f64 / t.as_secs_f64(),
        t_pub.as_secs_f64(),
        (msgs * per_msg) as f64 / t_pub.as_secs_f64(),
    );
    println!(
        "edge RSS: idle {} MB, peak {} MB (VmHWM {} MB) with {sensors} sensors",
        rss_idle / 1024,
        peak / 1024,
        rss_kb(pid, "VmHWM:") / 1024
    );
    println!("syncs: {}", edge.metric("edge_buffer_syncs_total", ""));
}
