//! Alarm latency bench (issue 5): from a sensor's MQTT publish to the site broker until the event
//! arrives on the hub's SSE stream (`GET /api/v1/events/stream`), under background load.
//!
//! Real processes, release binaries (`cargo build --release --bins` first): hub, mosquitto as the
//! site broker, edge, `firmware-sim load` for the background readings. Probes: canonical manhole
//! covers of the seed (MH-0031…) publish `opened = true` (an urgent quantity, raising
//! `manhole.displaced` at once), then `opened = false` 250 ms later (clearing it), round robin. The
//! n-th raise on a component is the change of its event with `count` = n and no `cleared_at` (a
//! repeat keeps the first trigger), which is how it is matched on the SSE stream.
//!
//! Run: `cargo run --release -p wangge-tests --bin alarm_latency -- [PROBES] [LOAD_SENSORS] [LOAD_RATE]`
//! (defaults 120 probes, 500 sensors × 5 reports/s of 4 readings = 10k readings/s).

use serde_json::Value as Json;
use std::collections::HashMap;
use std::io::BufRead;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wangge_testkit::bench::{arg, percentile};
use wangge_testkit::{now_ms, wait_for, workspace_root, Mosquitto, Proc};
use wangge_tests::system::{sensor_components, Edge, Hub, ADMIN_TOKEN};

/// SSE follower: records when each raise of `opened` (component, count) arrives.
fn follow_sse_raises(http: u16, arrived: Arc<Mutex<HashMap<(String, u64), Instant>>>) {
    std::thread::spawn(move || -> anyhow::Result<()> {
        let resp = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()?
            .get(format!("http://127.0.0.1:{http}/api/v1/events/stream"))
            .bearer_auth(ADMIN_TOKEN)
            .send()?;
        for line in std::io::BufReader::new(resp).lines() {
            let line = line?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let at = Instant::now();
            let Ok(j) = serde_json::from_str::<Json>(data.trim_start()) else {
                continue;
            };
            if j["trigger"]["quantity"] != "opened" || j["cleared_at"] != Json::Null {
                continue;
            }
            if let (Some(c), Some(n)) = (j["component_id"].as_str(), j["count"].as_u64()) {
                arrived
                    .lock()
                    .unwrap()
                    .entry((c.to_string(), n))
                    .or_insert(at);
            }
        }
        Ok(())
    });
}

/// The hub's ingest counters that explain the latency.
fn print_hub_metrics(http: u16) {
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", http))
        .and_then(|r| r.text())
        .unwrap_or_default();
    for l in metrics.lines().filter(|l| {
        l.starts_with("wangge_ingest_rules_wait_seconds_total")
            || l.starts_with("wangge_ingest_readings_stored_total")
            || l.starts_with("wangge_ingest_batches_stored_total")
    }) {
        println!("hub metric: {l}");
    }
}

fn main() -> anyhow::Result<()> {
    let probes = arg(1, 120) as usize;
    let load_sensors = arg(2, 500);
    let load_rate = arg(3, 5);

    // The harness finds binaries under $CARGO_TARGET_DIR/{debug,release}: point it at a directory
    // holding only the release builds.
    let release = workspace_root().join("target/release");
    let bins = tempfile::tempdir()?;
    std::fs::create_dir_all(bins.path().join("release"))?;
    for b in ["hub", "edge", "firmware-sim"] {
        let p = release.join(b);
        anyhow::ensure!(
            p.exists(),
            "{} missing: run `cargo build --release --bins` first",
            p.display()
        );
        std::os::unix::fs::symlink(&p, bins.path().join("release").join(b))?;
    }
    std::env::set_var("CARGO_TARGET_DIR", bins.path());

    let dir = tempfile::tempdir()?;
    let mut hub = Hub::prepare(dir.path(), "")?;
    hub.start()?;
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir.path(), &hub, &site)?;
    edge.start()?;

    // SSE follower: raises by (component, count) → arrival instant.
    let arrived: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    follow_sse_raises(hub.http, arrived.clone());

    // Background load through the same site broker and edge.
    let mut load_cmd = Command::new(bins.path().join("release/firmware-sim"));
    load_cmd
        .current_dir(workspace_root())
        .arg("load")
        .args(["--sensors", &load_sensors.to_string()])
        .args(["--rate", &load_rate.to_string()])
        .args(["--type", "manhole_cover", "--dialect", "canonical"])
        .args(["--duration", &format!("{}s", probes / 2 + 20)])
        .args(["--mqtt", &format!("127.0.0.1:{}", site.port)]);
    let mut load = Proc::spawn("firmware-sim load", load_cmd, &dir.path().join("load.log"))?;
    std::thread::sleep(Duration::from_secs(5)); // warm up

    // Probe publisher.
    use rumqttc::{Client, MqttOptions, QoS};
    let (client, mut conn) =
        Client::new(MqttOptions::new("alarm-probe", "127.0.0.1", site.port), 256);
    std::thread::spawn(move || for _ in conn.iter() {});
    let sensors = ["MH-0031", "MH-0032", "MH-0033", "MH-0034"];
    let mut seq = [0u64; 4];
    let components = sensor_components()?;
    let mut sent: Vec<((String, u64), Instant)> = Vec::new();
    let mut last_ts = 0;
    for i in 0..probes {
        let k = i % sensors.len();
        let topic = format!("sensors/{}/readings", sensors[k]);
        let mut ts = now_ms();
        if ts <= last_ts {
            ts = last_ts + 1;
        }
        last_ts = ts;
        let body = format!(
            r#"{{"ts":{ts},"seq":{},"values":{{"opened":true}}}}"#,
            seq[k]
        );
        seq[k] += 1;
        let at = Instant::now();
        client.publish(&topic, QoS::AtLeastOnce, false, body)?;
        sent.push((
            (
                components[sensors[k]].clone(),
                (i / sensors.len()) as u64 + 1,
            ),
            at,
        ));
        std::thread::sleep(Duration::from_millis(250));
        let ts2 = now_ms().max(last_ts + 1);
        last_ts = ts2;
        let body = format!(
            r#"{{"ts":{ts2},"seq":{},"values":{{"opened":false}}}}"#,
            seq[k]
        );
        seq[k] += 1;
        client.publish(&topic, QoS::AtLeastOnce, false, body)?;
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = wait_for("the last alarms on SSE", Duration::from_secs(30), || {
        let a = arrived.lock().unwrap();
        sent.iter()
            .all(|(key, _)| a.contains_key(key))
            .then_some(())
    });
    let load_status = wait_for("the load to finish", Duration::from_secs(120), || {
        load.try_wait()
    });
    let load_log = std::fs::read_to_string(dir.path().join("load.log")).unwrap_or_default();

    let a = arrived.lock().unwrap();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(key, at)| {
            a.get(key)
                .map(|got| got.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    let achieved = load_log
        .lines()
        .find(|l| l.contains("achieved"))
        .unwrap_or("(no load summary)")
        .to_string();
    println!(
        "alarm latency, sensor MQTT publish → hub SSE (release binaries, {probes} probes, background {load_sensors} sensors × {load_rate} reports/s × 4 readings = {} readings/s target)",
        load_sensors * load_rate * 4
    );
    let readings = load_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find_map(|j| {
            Some((
                j["totals"]["readings"].as_f64()?,
                j["duration_ms"].as_f64()? / 1000.0,
            ))
        });
    println!("background: {achieved} (exit {load_status:?})");
    if let Some((n, s)) = readings {
        println!(
            "background readings: {n} in {s:.1} s = {:.0} readings/s",
            n / s
        );
    }
    println!(
        "received {}/{} probes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
        lat.len(),
        sent.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.first().copied().unwrap_or(f64::NAN),
    );
    print_hub_metrics(hub.http);
    edge.kill9();
    hub.kill9();
    Ok(())
}
