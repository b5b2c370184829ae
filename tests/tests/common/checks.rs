//! Checks the end-to-end tests share: the demo's expected events, the events a hub lists, the
//! webhook deliveries of those events, and VictoriaMetrics' samples against the simulator's record.

use super::webhook::{id_string, Delivery, Receiver};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wangge_testkit::record::Recorded;
use wangge_tests::system::{sensor_components, wait_every, wait_observing, Hub};

/// Events the demo raises from its MQTT sensors with their own clocks (canonical, acme,
/// gridsense): (sensor, type). The serial and lumen sensors of the demo are not streamed: a
/// serial line has no acknowledgement to survive an edge kill, and lumen readings carry the
/// edge's receive time.
pub const EXPECTED_EVENTS: [(&str, &str); 11] = [
    ("MH-0001", "manhole.displaced"),
    ("HY-0001", "hydrant.low_pressure"),
    ("FG-0001", "flood.warning"),
    ("FG-0001", "flood.danger"),
    ("SM-0001", "fire.smoke"),
    ("DC-0001", "security.door_open"),
    ("IR-0007", "security.intrusion"),
    ("EV-0001", "elevator.entrapment"),
    ("EV-0001", "elevator.fault"),
    ("WB-0006", "sanitation.bin_full"),
    ("SM-0015", "device.battery_low"),
];

/// firmware-sim `stream` arguments for the demo's MQTT sensors with their own clocks (the
/// profiles of [`EXPECTED_EVENTS`]) at 10× speed, from `start_ms` for `duration`, to the site
/// broker on `site_port`; then `extra`.
pub fn demo_stream_args(
    start_ms: i64,
    duration: Duration,
    site_port: u16,
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--scenario",
        "config/scenarios/demo.toml",
        "--profiles",
        "canonical,acme,gridsense",
        "--interval-scale",
        "0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--start".to_string(),
        start_ms.to_string(),
        "--duration".to_string(),
        format!("{}s", duration.as_secs()),
        "--mqtt".to_string(),
        format!("127.0.0.1:{site_port}"),
    ]);
    args.extend_from_slice(extra);
    args
}

pub fn list_events(hub: &Hub) -> anyhow::Result<Vec<Json>> {
    let mut out = Vec::new();
    let mut path = "/api/v1/events?limit=1000".to_string();
    loop {
        let j = hub.get(&path)?;
        out.extend(j["items"].as_array().cloned().unwrap_or_default());
        match &j["next"] {
            Json::Null => return Ok(out),
            c => path = format!("/api/v1/events?limit=1000&cursor={}", id_string(c)),
        }
    }
}

/// Events by (component, type).
fn by_component_and_type(events: &[Json]) -> BTreeMap<(String, String), Vec<Json>> {
    let mut m: BTreeMap<(String, String), Vec<Json>> = BTreeMap::new();
    for e in events {
        m.entry((
            e["component_id"].as_str().unwrap_or("").to_string(),
            e["type"].as_str().unwrap_or("").to_string(),
        ))
        .or_default()
        .push(e.clone());
    }
    m
}

/// Waits (60 s) until `list` shows every [`EXPECTED_EVENTS`] entry on its sensor's component, then
/// asserts each was raised exactly once (one active per component and type, none raised twice)
/// and that nothing else was raised but `device.offline` (all sensors fall silent when the stream
/// ends: offline after three intervals is right). `context` is appended to the failure messages
/// (logs, known gaps). Returns the events listed last.
pub fn assert_demo_events_once(
    mut list: impl FnMut() -> Option<Vec<Json>>,
    context: impl Fn() -> String,
) -> Vec<Json> {
    let sc = sensor_components().unwrap();
    let want: BTreeSet<(String, String)> = EXPECTED_EVENTS
        .iter()
        .map(|(s, t)| (sc[*s].clone(), t.to_string()))
        .collect();
    let (raised, events) = wait_observing(
        "every demo incident's event",
        Duration::from_secs(60),
        Duration::from_secs(1),
        &mut list,
        |events| {
            let have = by_component_and_type(events);
            want.iter().all(|k| have.contains_key(k))
        },
    );
    let by_key = by_component_and_type(&events);
    if raised.is_err() {
        let missing: Vec<_> = want.iter().filter(|k| !by_key.contains_key(*k)).collect();
        panic!("events missing: {missing:?}\n{}", context());
    }
    let unexpected: Vec<_> = by_key
        .keys()
        .filter(|k| !want.contains(*k) && k.1 != "device.offline" && k.1 != "edge.offline")
        .collect();
    assert!(
        unexpected.is_empty(),
        "events nobody caused: {unexpected:?}"
    );
    for k in &want {
        assert_eq!(
            by_key[k].len(),
            1,
            "{k:?}: exactly one event (one active per component and type, none raised twice): {:#?}",
            by_key[k]
        );
    }
    events
}

/// Waits (120 s) until `receiver` accepted every one of `events` in its latest version, then
/// asserts every delivery's signature verified and its id header is its body's id. `context` is
/// appended to the failure message. Returns the deliveries accepted.
pub fn assert_webhooks_delivered(
    receiver: &Receiver,
    events: &[Json],
    context: impl Fn() -> String,
) -> Vec<Delivery> {
    let latest: BTreeMap<String, u64> = events
        .iter()
        .map(|e| (id_string(&e["id"]), e["version"].as_u64().unwrap_or(0)))
        .collect();
    let reached = |got: &[Delivery], id: &String, v: u64| {
        got.iter()
            .any(|d| &d.header_event_id == id && d.version >= v)
    };
    let delivered = wait_every(
        "every event's latest version at the webhook receiver",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let got = receiver.accepted.lock().unwrap();
            latest
                .iter()
                .all(|(id, v)| reached(&got, id, *v))
                .then_some(())
        },
    );
    let got = receiver.accepted.lock().unwrap().clone();
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &got {
        *per_id.entry(g.header_event_id.as_str()).or_default() += 1;
    }
    println!(
        "webhooks: {} deliveries accepted for {} events ({} answered 503); per event: {per_id:?}",
        got.len(),
        latest.len(),
        *receiver.refused_503.lock().unwrap()
    );
    assert!(
        delivered.is_ok(),
        "events whose latest version never reached the webhook receiver: {:?}{}",
        latest
            .iter()
            .filter(|(id, v)| !reached(&got, id, **v))
            .collect::<Vec<_>>(),
        context()
    );
    let bad: Vec<_> = got
        .iter()
        .filter(|d| !d.signature_ok || d.header_event_id != d.body_id)
        .collect();
    assert!(
        bad.is_empty(),
        "deliveries with a bad signature or an id header that is not the body's id: {bad:#?}"
    );
    got
}

/// How VictoriaMetrics' samples compare with the recorded readings, by (sensor, quantity, ts).
#[derive(Debug, Default, PartialEq)]
pub struct VmDiff {
    pub samples: usize,
    /// Recorded readings with no sample.
    pub missing: Vec<(String, String, i64)>,
    /// Samples of a reading never sent.
    pub invented: usize,
    /// Samples beyond the first of the same reading (the same point written again).
    pub repeats: usize,
}

impl VmDiff {
    /// A sample for every reading, nothing else.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.invented == 0 && self.repeats == 0
    }
}

pub fn vm_compare(port: u16, record: &[Recorded]) -> Option<VmDiff> {
    let client = reqwest::blocking::Client::new();
    let _ = client
        .get(format!("http://127.0.0.1:{port}/internal/force_flush"))
        .send();
    let body = client
        .get(format!("http://127.0.0.1:{port}/api/v1/export"))
        .query(&[("match[]", "{__name__=~\".+_value\"}")])
        .send()
        .ok()?
        .text()
        .ok()?;
    let mut seen: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    let mut diff = VmDiff::default();
    for l in body.lines() {
        let Ok(s) = serde_json::from_str::<Json>(l) else {
            continue;
        };
        let name = s["metric"]["__name__"].as_str().unwrap_or("");
        let quantity = name.strip_suffix("_value").unwrap_or(name).to_string();
        let sensor = s["metric"]["sensor"].as_str().unwrap_or("").to_string();
        for t in s["timestamps"].as_array().into_iter().flatten() {
            diff.samples += 1;
            let key = (sensor.clone(), quantity.clone(), t.as_i64().unwrap_or(0));
            *seen.entry(key).or_default() += 1;
        }
    }
    let sent: BTreeSet<(String, String, i64)> = record
        .iter()
        .map(|r| (r.sensor.clone(), r.quantity.clone(), r.ts_ms.unwrap_or(0)))
        .collect();
    for (k, n) in &seen {
        if sent.contains(k) {
            diff.repeats += n - 1;
        } else {
            diff.invented += n;
        }
    }
    diff.missing = sent.into_iter().filter(|k| !seen.contains_key(k)).collect();
    Some(diff)
}
