//! Issue 5 end to end, all real processes: `config/scenarios/demo.toml` played by firmware-sim
//! (every dialect, both serial lines) → mosquitto site broker → edge → hub. Each incident raises
//! exactly one event of the right type and severity on the right component (from
//! `config/registry/sensors.csv`), each event reaches exactly the departments `config/sharing.toml`
//! names (REST with department tokens, 404 elsewhere; MQTT `wangge/v1/events/{department}/{type}`),
//! and the SSE stream delivers every change, resumed with `Last-Event-ID` across a hub `kill -9`.
//!
//! Clocks: the simulator runs 10× faster than the wall clock (`--interval-scale 0.1`) with its
//! sensor clocks starting at 22:30 local (UTC+8) at least two hours in the past, so the night-time
//! rules (door permitted hours) apply whatever time the test runs, and no timestamp is in the
//! future. lumen sensors (street lights, electrical fire) send no time: the edge stamps receive
//! time, so the street light's "no current for N min" takes N real minutes — the test runs the
//! shipped rules with that one duration cut from 5 min to 1 — and `device.offline` (3 × 30 s of
//! silence) 90 real seconds. That sets this test's length (~2.5 min).

use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wangge_testkit::{bin, wait_for, workspace_root, Mosquitto, Proc};
use wangge_tests::system::{night_start_ms, sensor_components, wait_every, Edge, Hub, ADMIN_TOKEN};

/// One expected event: the sensor whose incident raises it, its type and severity.
struct Expect {
    sensor: &'static str,
    event: &'static str,
    severity: &'static str,
}

/// What `config/scenarios/demo.toml` must raise under `config/rules.toml`, and nothing else.
fn expected() -> Vec<Expect> {
    let e = |sensor, event, severity| Expect {
        sensor,
        event,
        severity,
    };
    vec![
        e("MH-0001", "manhole.displaced", "critical"),
        e("MH-0041", "manhole.displaced", "critical"),
        e("HY-0001", "hydrant.low_pressure", "major"),
        e("HY-0013", "hydrant.low_pressure", "major"),
        e("SL-0003", "light.fault", "major"),
        // flood_rise: ≥ 15 cm, then ≥ 30 cm: both catalogue levels.
        e("FG-0001", "flood.warning", "major"),
        e("FG-0001", "flood.danger", "critical"),
        e("SM-0001", "fire.smoke", "critical"),
        e("GS-0006", "gas.leak", "critical"),
        e("DC-0001", "security.door_open", "major"),
        e("IR-0007", "security.intrusion", "critical"),
        // entrapment with fault code 21: the entrapment and the fault.
        e("EV-0001", "elevator.entrapment", "critical"),
        e("EV-0001", "elevator.fault", "major"),
        e("EF-0001", "electrical.leakage", "major"),
        e("WB-0006", "sanitation.bin_full", "minor"),
        e("SL-0010", "device.offline", "major"),
        e("SM-0015", "device.battery_low", "minor"),
    ]
}

/// component id → (type, grid cell, owner, maintainer), from the seed.
fn components() -> HashMap<String, (String, String, String, String)> {
    let text =
        std::fs::read_to_string(workspace_root().join("config/registry/components.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                (
                    f[1].to_string(),
                    f[6].to_string(),
                    f[7].to_string(),
                    f[8].to_string(),
                ),
            )
        })
        .collect()
}

fn departments() -> Vec<String> {
    let text =
        std::fs::read_to_string(workspace_root().join("config/registry/departments.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect()
}

/// The departments `config/sharing.toml` names for an event, read from the file itself (an
/// independent reading of its documented semantics, not the hub's code).
fn recipients(
    sharing: &toml::Value,
    event_type: &str,
    comp: &(String, String, String, String),
) -> BTreeSet<String> {
    let (ctype, grid, owner, maintainer) = comp;
    let mut out = BTreeSet::new();
    if sharing.get("owner_sees").and_then(|v| v.as_bool()) != Some(false) {
        out.insert(owner.clone());
    }
    if sharing.get("maintainer_sees").and_then(|v| v.as_bool()) != Some(false) {
        out.insert(maintainer.clone());
    }
    let list = |s: &toml::Value, k: &str| -> Option<Vec<String>> {
        s.get(k).and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    };
    let empty = Vec::new();
    for s in sharing
        .get("share")
        .and_then(|v| v.as_array())
        .unwrap_or(&empty)
    {
        let ok = list(s, "event_types").is_none_or(|ts| {
            ts.iter().any(|t| match t.strip_suffix('*') {
                Some(p) => event_type.starts_with(p),
                None => t == event_type,
            })
        }) && list(s, "component_types").is_none_or(|ts| ts.contains(ctype))
            && list(s, "grid_cells").is_none_or(|gs| gs.iter().any(|g| grid.starts_with(g)))
            && list(s, "owners").is_none_or(|os| os.contains(owner))
            && list(s, "maintainers").is_none_or(|ms| ms.contains(maintainer));
        if ok {
            out.insert(s["department"].as_str().unwrap().to_string());
        }
    }
    out
}

/// GET with a token: (status, JSON body or null).
fn get_as(hub: &Hub, token: &str, path: &str) -> (u16, Json) {
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}{path}", hub.http))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Json::Null))
}

/// Every event a token can list (`GET events`, following `next`).
fn list_events(hub: &Hub, token: &str) -> Vec<Json> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?limit=1000&cursor={c}"),
            None => "/api/v1/events?limit=1000".to_string(),
        };
        let (status, j) = get_as(hub, token, &path);
        assert_eq!(status, 200, "GET {path}: {j}");
        out.extend(j["items"].as_array().unwrap().iter().cloned());
        match &j["next"] {
            Json::Null => return out,
            Json::String(s) => cursor = Some(s.clone()),
            other => cursor = Some(other.to_string()),
        }
    }
}

/// One change received on the SSE stream: (cursor, event JSON), and the reconnections made.
#[derive(Default)]
struct SseLog {
    changes: Vec<(u64, Json)>,
    connects: Vec<Option<u64>>,
}

/// Follows `GET events/stream` from the very start (`Last-Event-ID: 0`), reconnecting with the
/// last id received whenever the stream breaks (the hub killed), until `stop`.
fn follow_sse(http: u16, log: Arc<Mutex<SseLog>>, stop: Arc<AtomicBool>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let last = log.lock().unwrap().changes.last().map(|c| c.0);
        let resp = client
            .get(format!("http://127.0.0.1:{http}/api/v1/events/stream"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Last-Event-ID", last.unwrap_or(0).to_string())
            .send();
        let resp = match resp {
            Ok(r) if r.status().is_success() => r,
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        log.lock().unwrap().connects.push(last);
        let mut id: Option<u64> = None;
        let mut data = String::new();
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if line.is_empty() {
                if let (Some(i), false) = (id, data.is_empty()) {
                    if let Ok(j) = serde_json::from_str::<Json>(&data) {
                        log.lock().unwrap().changes.push((i, j));
                    }
                }
                id = None;
                data.clear();
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Follows every department's events on the hub's broker, each with the MQTT credentials the
/// hub issued to that department (`hub mqtt-user add`), which may read only its own subtree,
/// resubscribing after every reconnect. A message outside a consumer's subtree fails the test.
fn follow_mqtt(hub: &Hub, seen: Arc<Mutex<Vec<(String, Json)>>>, stop: Arc<AtomicBool>) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let departments =
        std::fs::read_to_string(workspace_root().join("config/registry/departments.csv"))
            .expect("seed departments");
    for department in departments
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
    {
        let (user, secret) = hub.add_mqtt_user(department).expect("hub mqtt-user add");
        let own = format!("wangge/v1/events/{department}/");
        let filter = format!("{own}#");
        let mut opts = MqttOptions::new(user.clone(), "127.0.0.1", hub.mqtt);
        opts.set_credentials(user, secret);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 64);
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for ev in conn.iter() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = if p.topic.starts_with(&own) {
                            p.topic.clone()
                        } else {
                            format!("LEAK: the {own} consumer got {}", p.topic)
                        };
                        if let Ok(j) = serde_json::from_slice::<Json>(&p.payload) {
                            seen.lock().unwrap().push((topic, j));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(300)),
                }
            }
        });
    }
}

/// The events that must exist: (component, type) → (sensor, severity).
fn expected_by_key(sc: &HashMap<String, String>) -> BTreeMap<(String, String), (String, String)> {
    expected()
        .into_iter()
        .map(|e| {
            (
                (sc[e.sensor].clone(), e.event.to_string()),
                (e.sensor.to_string(), e.severity.to_string()),
            )
        })
        .collect()
}

/// `config/rules.toml` as shipped, except that the street light's "no current" must last 60 s
/// instead of 300 s: lumen readings are edge-stamped, so that duration is wall time, and five
/// minutes of it would make this the suite's longest test for no extra coverage.
fn shipped_rules_with_a_one_minute_street_light_fault(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(workspace_root().join("config/rules.toml")).unwrap();
    let at = shipped
        .find("event = \"light.fault\"")
        .expect("config/rules.toml has the light.fault rule");
    let for_s = at
        + shipped[at..]
            .find("for_s = 300")
            .expect("light.fault lasts 300 s");
    let rules = format!(
        "{}for_s = 60{}",
        &shipped[..for_s],
        &shipped[for_s + "for_s = 300".len()..]
    );
    let path = dir.join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    path
}

#[test]
fn each_demo_incident_raises_one_event_delivered_to_exactly_the_departments_the_rules_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules = shipped_rules_with_a_one_minute_street_light_fault(dir.path());
    let mut hub = Hub::prepare(
        dir.path(),
        &format!("[events]\nrules_path = {:?}\n", rules.display().to_string()),
    )
    .unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
    edge.start().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sse = Arc::new(Mutex::new(SseLog::default()));
    {
        let (log, stop, http) = (sse.clone(), stop.clone(), hub.http);
        std::thread::spawn(move || follow_sse(http, log, stop));
    }
    let mqtt_seen = Arc::new(Mutex::new(Vec::new()));
    follow_mqtt(&hub, mqtt_seen.clone(), stop.clone());
    wait_for("the SSE stream to connect", Duration::from_secs(20), || {
        (!sse.lock().unwrap().connects.is_empty()).then_some(())
    })
    .unwrap();

    // The demo: all 200 sensors, every dialect, both serial lines, 10× fast-forward.
    let mut sim_cmd = Command::new(bin("firmware-sim"));
    sim_cmd
        .current_dir(workspace_root())
        .arg("run")
        .args(["--scenario", "config/scenarios/demo.toml"])
        .args(["--start", &night_start_ms().to_string()])
        .args(["--interval-scale", "0.1", "--duration", "480s"])
        .args(["--mqtt", &format!("127.0.0.1:{}", site.port)])
        .arg("--pty-a")
        .arg(dir.path().join("ttyA"))
        .arg("--pty-b")
        .arg(dir.path().join("ttyB"))
        .env("RUST_LOG", "info");
    let mut sim = Proc::spawn("firmware-sim", sim_cmd, &dir.path().join("sim.log")).unwrap();
    let sim_started = Instant::now();

    let sc = sensor_components().unwrap();
    let want = expected_by_key(&sc);
    let admin_keys = |hub: &Hub| -> BTreeSet<(String, String)> {
        list_events(hub, ADMIN_TOKEN)
            .iter()
            .map(|e| {
                (
                    e["component_id"].as_str().unwrap_or("").to_string(),
                    e["type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };

    // Every incident of the first two scenario minutes has been raised (12 s of wall time), and
    // the scenario's clears are past; then the hub dies mid-run and comes back.
    let early: BTreeSet<(String, String)> = want
        .keys()
        .filter(|(_, t)| t != "light.fault" && t != "device.offline")
        .cloned()
        .collect();
    wait_for(
        "the demo's early incidents to raise their events",
        Duration::from_secs(120),
        || {
            let have = admin_keys(&hub);
            early.is_subset(&have).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: have {:?}\nhub: {}", admin_keys(&hub), hub.log_tail()));
    while sim_started.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before_kill = sse.lock().unwrap().changes.len();
    hub.kill9();
    std::thread::sleep(Duration::from_secs(1));
    hub.start().unwrap();

    // The silent street light goes offline (90 s), the failed one faults (1 min of lamp on, no
    // current, on the edge's clock).
    wait_every(
        "every demo incident to raise its event",
        Duration::from_secs(300),
        Duration::from_secs(2),
        || {
            let have = admin_keys(&hub);
            want.keys().all(|k| have.contains(k)).then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: missing {:?}\nsim running: {}\nhub: {}",
            want.keys()
                .filter(|k| !admin_keys(&hub).contains(*k))
                .collect::<Vec<_>>(),
            sim.try_wait().is_none(),
            hub.log_tail()
        )
    });
    assert!(
        sim.try_wait().is_none(),
        "the simulator is still running (sensors not silent): {}",
        sim.log_tail(2000)
    );

    // 1. Exactly one event per incident, of the right type and severity, on the right component,
    //    and nothing else anywhere.
    let all = list_events(&hub, ADMIN_TOKEN);
    let mut by_key: BTreeMap<(String, String), Vec<&Json>> = BTreeMap::new();
    for e in &all {
        by_key
            .entry((
                e["component_id"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(e);
    }
    let unexpected: Vec<_> = by_key.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        unexpected.is_empty(),
        "events nobody caused: {unexpected:?}"
    );
    for (key, (sensor, severity)) in &want {
        let evs = &by_key[key];
        assert_eq!(
            evs.len(),
            1,
            "{sensor} {}: exactly one event: {evs:#?}",
            key.1
        );
        assert_eq!(
            evs[0]["severity"].as_str(),
            Some(severity.as_str()),
            "{sensor} {}",
            key.1
        );
    }

    // 2. Each event is visible to exactly the departments the sharing rules name: in their lists,
    //    readable by id, and 404 for everyone else (the same answer as for no such event).
    let sharing: toml::Value = toml::from_str(
        &std::fs::read_to_string(workspace_root().join("config/sharing.toml")).unwrap(),
    )
    .unwrap();
    let comps = components();
    let mut expected_recipients: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &all {
        let comp = &comps[e["component_id"].as_str().unwrap()];
        expected_recipients.insert(
            e["id"].to_string(),
            recipients(&sharing, e["type"].as_str().unwrap(), comp),
        );
    }
    for dept in departments() {
        let token = hub.add_token(&dept, "read").unwrap();
        let listed: BTreeSet<String> = list_events(&hub, &token)
            .iter()
            .map(|e| e["id"].to_string())
            .collect();
        let should: BTreeSet<String> = expected_recipients
            .iter()
            .filter(|(_, ds)| ds.contains(&dept))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(listed, should, "department {dept}: events listed");
        for e in &all {
            let id = e["id"].to_string();
            let id_path = id.trim_matches('"');
            let (status, body) = get_as(&hub, &token, &format!("/api/v1/events/{id_path}"));
            let want_status = if should.contains(&id) { 200 } else { 404 };
            assert_eq!(
                status, want_status,
                "department {dept}, event {id} ({} on {}): {body}",
                e["type"], e["component_id"]
            );
        }
    }

    // 3. MQTT: each event was published on wangge/v1/events/{department}/{type} for exactly its
    //    departments.
    let published: BTreeMap<String, BTreeSet<String>> = wait_every(
        "MQTT publications for every event",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (topic, j) in mqtt_seen.lock().unwrap().iter() {
                if topic.starts_with("LEAK") {
                    continue;
                }
                let rest = topic.strip_prefix("wangge/v1/events/")?;
                let (dept, ty) = rest.split_once('/')?;
                assert_eq!(
                    Some(ty),
                    j["type"].as_str(),
                    "topic {topic} carries its type"
                );
                m.entry(j["id"].to_string())
                    .or_default()
                    .insert(dept.to_string());
            }
            (m == expected_recipients).then_some(m)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: want {expected_recipients:#?}"));
    assert_eq!(published.len(), want.len());
    let leaks: Vec<String> = mqtt_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.starts_with("LEAK"))
        .map(|(t, _)| t.clone())
        .collect();
    assert!(
        leaks.is_empty(),
        "department consumers saw others' events: {leaks:?}"
    );

    // 4. SSE: every change once, in cursor order, across the hub's kill -9 (resumed with
    //    Last-Event-ID); every event's latest version arrived.
    let latest: BTreeMap<String, u64> = all
        .iter()
        .map(|e| (e["id"].to_string(), e["version"].as_u64().unwrap()))
        .collect();
    wait_every(
        "the SSE stream to carry every event's latest version",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let log = sse.lock().unwrap();
            let mut got: BTreeMap<String, u64> = BTreeMap::new();
            for (_, j) in &log.changes {
                let v = got.entry(j["id"].to_string()).or_default();
                *v = (*v).max(j["version"].as_u64().unwrap_or(0));
            }
            let ok = latest.iter().all(|(id, v)| got.get(id) >= Some(v));
            drop(log);
            ok.then_some(())
        },
    )
    .unwrap();
    let log = sse.lock().unwrap();
    let cursors: Vec<u64> = log.changes.iter().map(|c| c.0).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "SSE cursors strictly increase (no change twice): {cursors:?}"
    );
    assert!(
        log.connects.len() >= 2 && log.connects[1..].iter().all(|c| c.is_some()),
        "the stream was resumed with Last-Event-ID after the kill: {:?}",
        log.connects
    );
    assert!(
        before_kill > 0 && log.changes.len() > before_kill,
        "changes arrived before ({before_kill}) and after the restart ({})",
        log.changes.len()
    );
    drop(log);

    stop.store(true, Ordering::Relaxed);
    sim.terminate(Duration::from_secs(5));
    edge.kill9();
    hub.kill9();
}
