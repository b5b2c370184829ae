//! Checks the end-to-end tests share: the demo's expected events, the events a hub lists, and
//! VictoriaMetrics' samples against the simulator's record.

use super::webhook::id_string;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use wangge_testkit::record::Recorded;
use wangge_tests::system::Hub;

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
