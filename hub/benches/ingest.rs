//! Ingest benchmarks (a bench binary that prints figures; run in release):
//!
//! ```text
//! cargo bench -p hub --bench ingest -- [store|e2e|influx|query|all]
//! ```
//! - `store`: `EmbeddedStore::write` alone, groups of readings in time order over many series.
//! - `e2e`: edges (rumqttc) → embedded broker → ingest → embedded store → acks; readings/s
//!   from the first publish to the last ack.
//! - `influx`: the same with the InfluxDB sink against a real VictoriaMetrics process; acked
//!   readings/s (spill) and drained points/s (until VictoriaMetrics has them all).
//! - `query`: latency of a 24 h chart (288 five-minute buckets) from the embedded store.
//!
//! Sizes via env: `BENCH_READINGS` (default 2 000 000), `BENCH_SENSORS` (default 2000),
//! `BENCH_EDGES` (default 4), `BENCH_BATCH` (readings per batch, default 500), `BENCH_WINDOW`
//! (unacked batches per edge, default 32), `BENCH_GROUP` (rows per write in `store`, default 25 000),
//! `BENCH_BOTH_SINKS=1` (`influx` writes to the embedded store too, both sinks at once),
//! `BENCH_RULES=1` (`e2e`: every stored reading also goes through the events rules before its
//! batch is acked, as in `hub serve`).

#[path = "../tests/ingest_support/mod.rs"]
mod ingest_support;

use hub::broker::{self, BrokerConfig};
use hub::ingest::{self, IngestConfig};
use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::influx::{InfluxConfig, InfluxSink};
use hub::timeseries::{StoredReading, TimeSeriesQuery, TimeSeriesSink};
use ingest_support::{connect_edge, Login, MemRegistry};
use protocol::uplink::{mac_key, topics, Quality, Reading, ReadingFlags, UplinkBatch};
use protocol::{Quantity, Value};
use rumqttc::QoS;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

const S: i64 = 1_000_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use protocol::time::now_ns;

/// Readings in time order: every sensor reports once per "tick", ticks 1 s apart, ending now.
fn reading_at(i: usize, sensors: usize, t0: i64) -> Reading {
    let tick = (i / sensors) as i64;
    Reading {
        sensor: format!("S-{:06}", i % sensors).as_str().into(),
        quantity: Quantity::Temperature,
        value: Value::Float((i % 1000) as f64 * 0.1),
        ts_ns: t0 + tick * S,
        quality: Quality::Good,
        flags: ReadingFlags::default(),
    }
}

fn bench_store(total: usize, sensors: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap();
    let group = env("BENCH_GROUP", 25_000);
    let t0 = now_ns() - (total / sensors) as i64 * S;
    let started = Instant::now();
    let mut i = 0;
    let mut last_report = Instant::now();
    let mut done_at_report = 0;
    while i < total {
        let n = group.min(total - i);
        let rs: Vec<StoredReading> = (i..i + n)
            .map(|k| StoredReading {
                reading: reading_at(k, sensors, t0),
                edge_id: "edge-1".into(),
                component_id: None,
                grid_cell: None,
                department: None,
            })
            .collect();
        store.write(&rs).unwrap();
        i += n;
        if last_report.elapsed() > Duration::from_secs(10) {
            let rate = (i - done_at_report) as f64 / last_report.elapsed().as_secs_f64();
            println!("  store: {i} rows, current {rate:.0} rows/s");
            last_report = Instant::now();
            done_at_report = i;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "store: {total} readings, {sensors} series, groups of {group}, synchronous=FULL: {:.2} s = {:.0} readings/s",
        secs,
        total as f64 / secs
    );
}

/// Edges publish pre-sealed batches with a window of unacked batches; returns readings/s
/// from the first publish to the last ack.
async fn drive_edges(
    port: u16,
    reg: &MemRegistry,
    secrets: &[(String, String)],
    total: usize,
    sensors: usize,
    batch: usize,
) -> f64 {
    let edges = secrets.len();
    let per_edge = total / edges / batch;
    let t0 = now_ns() - (total / sensors) as i64 * S;
    let window = env("BENCH_WINDOW", 32);
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for (e, (id, secret)) in secrets.iter().enumerate() {
        let key = mac_key(secret);
        // Pre-seal so the edge's CPU is not measured; batches interleave sensors in time order.
        let payloads: Vec<Vec<u8>> = (0..per_edge)
            .map(|s| {
                let base = (s * edges + e) * batch;
                UplinkBatch {
                    edge_id: id.as_str().into(),
                    epoch: 1,
                    seq: s as u64,
                    readings: (base..base + batch)
                        .map(|k| reading_at(k, sensors, t0))
                        .collect(),
                    gaps: vec![],
                }
                .seal(&key)
            })
            .collect();
        let edge = match connect_edge(port, id, secret, None).await {
            Login::Ok(e) => e,
            Login::Refused(e) => panic!("{e}"),
        };
        clients.push((edge, payloads));
    }
    let _ = reg;
    let started = Instant::now();
    for (mut edge, payloads) in clients {
        tasks.push(tokio::spawn(async move {
            let topic = topics::batches(&edge.id);
            let mut sent = 0usize;
            let mut acked = 0usize;
            let n = payloads.len();
            let mut it = payloads.into_iter();
            while acked < n {
                while sent < n && sent - acked < window {
                    let p = it.next().unwrap();
                    edge.client
                        .publish(&topic, QoS::AtLeastOnce, false, p)
                        .await
                        .unwrap();
                    sent += 1;
                }
                let _ = edge.next_ack().await;
                acked += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    (per_edge * edges * batch) as f64 / secs
}

async fn bench_e2e(total: usize, sensors: usize, edges: usize, batch: usize, influx: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(MemRegistry::default());
    let secrets: Vec<(String, String)> = (0..edges)
        .map(|e| {
            let id = format!("edge-{e}");
            let s = reg.add_edge(&id);
            (id, s)
        })
        .collect();
    let cfg = BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    let b = broker::start(&cfg, reg.clone()).unwrap();
    let mut influx_sink = None;
    let both = std::env::var("BENCH_BOTH_SINKS").is_ok();
    let mut sinks: Vec<Arc<dyn TimeSeriesSink>> = Vec::new();
    if influx.is_none() || both {
        sinks.push(Arc::new(
            EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap(),
        ));
    }
    if let Some(url) = influx {
        let mut c = InfluxConfig::new(url, "wangge", "bench", "token");
        c.spill_dir = dir.path().join("spill");
        let s = Arc::new(InfluxSink::start(&c).unwrap());
        influx_sink = Some(s.clone());
        sinks.push(s);
    }
    let rules = std::env::var("BENCH_RULES")
        .is_ok()
        .then(|| bench_rules(dir.path()));
    let with_rules = if rules.is_some() { " + rules" } else { "" };
    let ing = ingest::spawn_with_rules(
        &IngestConfig::in_dir(dir.path()),
        &b,
        reg.clone(),
        sinks,
        rules,
    )
    .unwrap();
    let window = env("BENCH_WINDOW", 32);
    let started = Instant::now();
    let rate = drive_edges(
        b.listen.unwrap().port(),
        &reg,
        &secrets,
        total,
        sensors,
        batch,
    )
    .await;
    let m = ing.metrics();
    let stored = m.readings_stored.load(Relaxed);
    let groups = m.groups_committed.load(Relaxed).max(1);
    let what = match (influx.is_some(), both) {
        (true, true) => "embedded store + influx sink",
        (true, false) => "influx sink (spill)",
        _ => "embedded store",
    };
    println!(
        "e2e {what}{with_rules}: {stored} readings, {edges} edges x {window} unacked, batches of {batch}, {sensors} sensors: \
         {rate:.0} readings/s acked ({:.1} batches per group commit)",
        m.batches_stored.load(Relaxed) as f64 / groups as f64
    );
    if !with_rules.is_empty() {
        println!(
            "rules stage: {:.2} s evaluating, ingest waited {:.2} s for it",
            m.rules_us.load(Relaxed) as f64 / 1e6,
            m.rules_wait_us.load(Relaxed) as f64 / 1e6
        );
    }
    if let Some(s) = influx_sink {
        let im = s.metrics();
        while s.backlog_bytes() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "influx drain: {} points in VictoriaMetrics {secs:.2} s after the first publish = {:.0} points/s end to end",
            im.points_sent.load(Relaxed),
            im.points_sent.load(Relaxed) as f64 / secs
        );
    }
}

/// The rules stage of `hub serve` for the bench: each sensor is its own manhole cover, every
/// reading goes through `Events::ingest` (default rules, a real `events.db`).
struct BenchRules(wangge_events::Events);

struct NoDirectory;

impl wangge_events::ComponentDirectory for NoDirectory {
    fn component(&self, _: &str) -> Option<wangge_events::model::ComponentCtx> {
        None
    }
}

fn bench_rules(dir: &std::path::Path) -> Box<dyn ingest::RulesStage> {
    let events = wangge_events::Events::open(
        &dir.join("events.db"),
        wangge_events::EventsConfig::defaults(),
        Arc::new(NoDirectory),
    )
    .unwrap();
    Box::new(BenchRules(events))
}

impl ingest::RulesStage for BenchRules {
    fn evaluate(&mut self, group: &ingest::StoredGroup) -> Result<(), String> {
        for sr in &group.readings {
            let r = &sr.reading;
            let input = wangge_events::rules::RuleInput {
                component_id: r.sensor.as_str(),
                component_type: "manhole_cover",
                sensor_id: r.sensor.as_str(),
                interval_s: 60,
                quantity: r.quantity,
                value: r.value.as_f64(),
                ts_ns: r.ts_ns,
                quality: r.quality,
            };
            self.0.ingest(&input, now_ns()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn bench_query(sensors: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap();
    // 24 h of one reading per 10 s for every sensor, inserted in time order.
    let per_sensor = 8640usize;
    let t0 = (now_ns() - 25 * 3600 * S) / S * S;
    let mut rows = Vec::with_capacity(50_000);
    for tick in 0..per_sensor {
        for s in 0..sensors {
            rows.push(StoredReading {
                reading: Reading {
                    sensor: format!("S-{s:06}").as_str().into(),
                    quantity: Quantity::Temperature,
                    value: Value::Float((tick % 100) as f64),
                    ts_ns: t0 + tick as i64 * 10 * S,
                    quality: Quality::Good,
                    flags: ReadingFlags::default(),
                },
                edge_id: "e".into(),
                component_id: None,
                grid_cell: None,
                department: None,
            });
            if rows.len() == 50_000 {
                store.write(&rows).unwrap();
                rows.clear();
            }
        }
    }
    store.write(&rows).unwrap();
    let mut lat = Vec::new();
    for i in 0..100 {
        let sensor = format!("S-{:06}", (i * 7919) % sensors);
        let t = Instant::now();
        let b = store
            .downsample(
                &sensor,
                Quantity::Temperature,
                t0,
                t0 + 24 * 3600 * S,
                300 * S,
            )
            .unwrap();
        lat.push(t.elapsed());
        assert_eq!(b.len(), 288);
    }
    lat.sort();
    println!(
        "query: 24 h chart (8640 raw points -> 288 buckets), store of {} rows ({sensors} sensors): \
         p50 {:.2} ms, p99 {:.2} ms",
        per_sensor * sensors,
        lat[50].as_secs_f64() * 1e3,
        lat[98].as_secs_f64() * 1e3
    );
}

struct Vm(std::process::Child);
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let what: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = what.is_empty() || what.iter().any(|w| w == "all");
    let want = |w: &str| all || what.iter().any(|x| x == w);
    let total = env("BENCH_READINGS", 2_000_000);
    let sensors = env("BENCH_SENSORS", 2000);
    let edges = env("BENCH_EDGES", 4);
    let batch = env("BENCH_BATCH", 500);
    let rt = tokio::runtime::Runtime::new().unwrap();
    if want("store") {
        bench_store(total, sensors);
    }
    if want("e2e") {
        rt.block_on(bench_e2e(total, sensors, edges, batch, None));
    }
    if want("influx") {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _vm = Vm(std::process::Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", data.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-dedup.minScrapeInterval=1ms")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("victoria-metrics installed"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "victoria-metrics did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let url = format!("http://127.0.0.1:{port}");
        rt.block_on(bench_e2e(total, sensors, edges, batch, Some(&url)));
    }
    if want("query") {
        bench_query(sensors.min(200));
    }
}
