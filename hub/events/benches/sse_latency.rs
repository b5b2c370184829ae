//! Latency from `Events::ingest` of an alarm reading to its event on the SSE stream, under a
//! background load of 10k readings/s through the rules. Prints p50/p99.
//! Run: `cargo bench -p wangge-events --bench sse_latency`
//!
//! Scope: this measures the events engine's part (rules → store → outbox → SSE over HTTP on
//! 127.0.0.1); MQTT ingest and reading storage in the hub come on top.

use futures::StreamExt;
use protocol::uplink::Quality;
use protocol::Quantity;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wangge_events::model::{now_ns, Actor, ComponentCtx, Scope};
use wangge_events::rules::RuleInput;
use wangge_events::{Authorizer, ComponentDirectory, Events, EventsConfig};

const BACKGROUND_READINGS_PER_S: usize = 10_000;
const SAMPLES: usize = 500;
const ALARM_INTERVAL_MS: u64 = 20;

struct Dir;
impl ComponentDirectory for Dir {
    fn component(&self, _id: &str) -> Option<ComponentCtx> {
        Some(ComponentCtx {
            component_type: "gas_detector".into(),
            grid_cell: "120111001001".into(),
            owner_department: "rq".into(),
            maintainer_department: "rq".into(),
        })
    }
}

struct Admin;
impl Authorizer for Admin {
    fn authorize(&self, bearer: &str) -> Option<Actor> {
        (bearer == "admin").then(|| Actor {
            name: "bench".into(),
            department: Some("rq".into()),
            scope: Scope::Read,
        })
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        Arc::new(Dir),
    )
    .unwrap();
    let app = axum::Router::new().nest(
        "/api/v1",
        wangge_events::router(events.clone(), Arc::new(Admin)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events/stream"))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    // Background: 10k normal readings/s over 1000 components, paced in 10 ms slices.
    let bg = {
        let (events, stop) = (events.clone(), stop.clone());
        std::thread::spawn(move || {
            let per_slice = BACKGROUND_READINGS_PER_S / 100;
            let comps: Vec<String> = (0..1000).map(|i| format!("BG{i:04}")).collect();
            let mut n = 0u64;
            let start = Instant::now();
            let mut slice = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in 0..per_slice {
                    let c = &comps[(n as usize + k) % comps.len()];
                    let r = RuleInput {
                        component_id: c,
                        component_type: "gas_detector",
                        sensor_id: c,
                        interval_s: 0,
                        quantity: Quantity::Gas,
                        value: 1.0,
                        ts_ns: now_ns(),
                        quality: Quality::Good,
                    };
                    events.ingest(&r, now_ns()).unwrap();
                }
                n += per_slice as u64;
                slice += 1;
                let due = start + Duration::from_millis(slice * 10);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            (n, start.elapsed())
        })
    };

    // Foreground: one alarm every 20 ms on a fresh component.
    let fg = {
        let (events, sent) = (events.clone(), sent.clone());
        std::thread::spawn(move || {
            for i in 0..SAMPLES {
                let c = format!("AL{i:05}");
                let r = RuleInput {
                    component_id: &c,
                    component_type: "gas_detector",
                    sensor_id: &c,
                    interval_s: 0,
                    quantity: Quantity::Gas,
                    value: 50.0,
                    ts_ns: now_ns(),
                    quality: Quality::Good,
                };
                sent.lock().unwrap().insert(c.clone(), Instant::now());
                events.ingest(&r, now_ns()).unwrap();
                std::thread::sleep(Duration::from_millis(ALARM_INTERVAL_MS));
            }
        })
    };

    let mut lat_us = Vec::with_capacity(SAMPLES);
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while lat_us.len() < SAMPLES {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
                    let comp = v["component_id"].as_str().unwrap_or_default();
                    if let Some(t0) = sent.lock().unwrap().remove(comp) {
                        lat_us.push(now.duration_since(t0).as_micros() as u64);
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    fg.join().unwrap();
    let (bg_n, bg_t) = bg.join().unwrap();
    lat_us.sort_unstable();
    let p = |q: f64| lat_us[((q * lat_us.len() as f64).ceil() as usize).clamp(1, lat_us.len()) - 1];
    println!(
        "ingest → SSE latency over {} alarms, background {:.0} readings/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat_us.len(),
        bg_n as f64 / bg_t.as_secs_f64(),
        p(0.50) as f64 / 1000.0,
        p(0.99) as f64 / 1000.0,
        *lat_us.last().unwrap() as f64 / 1000.0
    );
}
