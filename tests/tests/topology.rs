//! Alarms that know the topology, with real processes: a hub, a site broker, an edge and
//! firmware-sim streaming three manhole covers (every 5 s, so each is silent after 15 s) through
//! the edge. Stopping the edge (SIGTERM, and separately `kill -9`, which fires its last will)
//! raises exactly one `edge.offline` event and no `device.offline` for the sensors behind it;
//! restarted with one sensor no longer simulated, only that sensor raises its own
//! `device.offline`. The edge's event is seen by admin and by the department that owns what the
//! edge serves, and by no other department.
//!
//! About 2 minutes of wall time: each outage lasts past the sensors' silence allowance.

mod common;

use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wangge_testkit::paths::copy_seed;
use wangge_testkit::{bin, wait_for, Mosquitto, Proc};
use wangge_tests::system::{Edge, Hub, EDGE_ID};

/// The three sensors behind the edge: (sensor, component); every component owned and
/// maintained by `sw` (the seed's).
const SENSORS: [(&str, &str); 3] = [
    ("MH-0031", "1201110101000004"),
    ("MH-0032", "1201110102000004"),
    ("MH-0033", "1201110103000004"),
];
/// Their reporting interval, s: silent after 3 × 5 s.
const INTERVAL_S: u64 = 5;
/// Long enough past a sensor's allowance (15 s) and the edge's (3 × 5 s of statuses) that a
/// `device.offline` the hub would raise has been raised.
const PAST_ALLOWANCE: Duration = Duration::from_secs(25);

/// A seed whose only sensors are [`SENSORS`], canonical MQTT, every [`INTERVAL_S`].
fn seed(dir: &Path) -> std::path::PathBuf {
    let seed = dir.join("seed");
    copy_seed(&seed);
    let mut csv = String::from("id,component_id,type,profile,address,interval_s,edge\n");
    for (s, c) in SENSORS {
        csv.push_str(&format!(
            "{s},{c},manhole_cover,canonical,,{INTERVAL_S},{EDGE_ID}\n"
        ));
    }
    std::fs::write(seed.join("sensors.csv"), csv).unwrap();
    seed
}

/// firmware-sim streaming `only` of the seed's sensors to the site broker, in real time.
fn simulate(dir: &Path, seed: &Path, site: &Mosquitto, only: &str, tag: &str) -> Proc {
    let mut c = Command::new(bin("firmware-sim"));
    c.arg("run")
        .arg("--sensors")
        .arg(seed.join("sensors.csv"))
        .args(["--only", only, "--interval-scale", "1", "--duration", "10m"])
        .arg("--mqtt")
        .arg(format!("127.0.0.1:{}", site.port))
        .arg("--pty-a")
        .arg(dir.join("ttyA"))
        .arg("--pty-b")
        .arg(dir.join("ttyB"));
    Proc::spawn("firmware-sim", c, &dir.join(format!("sim-{tag}.log"))).unwrap()
}

/// `GET path` with `token`: the status and the JSON body.
fn get_as(hub: &Hub, token: &str, path: &str) -> (u16, Json) {
    let url = format!("http://127.0.0.1:{}{path}", hub.http);
    let r = reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(token)
        .send();
    let r = r.unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Json::Null))
}

/// Every event admin can list.
fn events(hub: &Hub) -> Vec<Json> {
    common::checks::list_events(hub).unwrap()
}

fn of_type<'a>(events: &'a [Json], t: &str) -> Vec<&'a Json> {
    events.iter().filter(|e| e["type"] == t).collect()
}

/// The edge's one event, once it says `count` outages and is `cleared` (or not).
fn edge_event(hub: &Hub, count: i64, cleared: bool) -> Option<Json> {
    let all = events(hub);
    let edge = of_type(&all, "edge.offline");
    let e = edge.first()?;
    (e["count"] == count && e["cleared_at"].is_null() != cleared).then(|| (*e).clone())
}

fn wait_edge_event(hub: &Hub, count: i64, cleared: bool, what: &str) -> Json {
    wait_for(what, Duration::from_secs(60), || {
        edge_event(hub, count, cleared)
    })
    .unwrap_or_else(|e| panic!("{e}\nevents: {:#?}\n{}", events(hub), hub.log_tail()))
}

/// No `device.offline` at all, and exactly one `edge.offline` naming the edge.
fn assert_only_the_edge_event(hub: &Hub, when: &str) {
    let all = events(hub);
    assert!(
        of_type(&all, "device.offline").is_empty(),
        "{when}: the sensors behind the offline edge raised their own: {all:#?}"
    );
    let edge = of_type(&all, "edge.offline");
    assert_eq!(edge.len(), 1, "{when}: one edge event: {all:#?}");
    assert_eq!(edge[0]["component_id"], format!("edge:{EDGE_ID}"));
}

/// Waits until every sensor's readings reach the hub.
fn wait_all_reporting(hub: &Hub) {
    let from = wangge_testkit::now_ns() - 3_600_000_000_000;
    for (s, c) in SENSORS {
        wait_for(
            &format!("{s}'s readings at the hub"),
            Duration::from_secs(60),
            || {
                let p = hub.points(c, "tilt", from, wangge_testkit::now_ns()).ok()?;
                (!p.is_empty()).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", hub.log_tail()));
    }
}

#[test]
fn an_offline_edge_raises_one_event_and_only_a_sensor_still_silent_after_its_return_raises_its_own()
{
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = seed(d);
    let site = Mosquitto::start();
    let mut hub = Hub::prepare_seeded(d, "", &seed).unwrap();
    hub.start().unwrap();
    let all_three = "MH-0031,MH-0032,MH-0033";
    let mut sim = simulate(d, &seed, &site, all_three, "1");
    let mut edge = Edge::prepare_seeded(d, &hub, &site, &seed.join("sensors.csv"), "").unwrap();
    edge.start().unwrap();
    wait_all_reporting(&hub);
    assert!(events(&hub).is_empty(), "nothing yet: {:#?}", events(&hub));

    // 1. SIGTERM: the edge stops (its will, or its silence, tells the hub).
    edge.proc
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(20));
    edge.proc = None;
    let ev = wait_edge_event(&hub, 1, false, "edge.offline after SIGTERM");
    let listed: Vec<&str> = ev["trigger"]["value"]["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(listed, vec!["MH-0031", "MH-0032", "MH-0033"], "{ev:#}");
    std::thread::sleep(PAST_ALLOWANCE);
    assert_only_the_edge_event(&hub, "after SIGTERM");
    // Counted: the three held back are on the hub's /metrics.
    let metrics = wangge_testkit::http_get(hub.http, "/metrics").unwrap_or_default();
    let held = wangge_testkit::metric_sum(
        &metrics,
        "wangge_events_suppressed_total",
        &[("event", "device.offline")],
    );
    assert!(held >= 3.0, "suppressed counter: {held}\n{metrics}");

    // Visibility: admin and sw (owner of all three components) see it; ga sees nothing of it.
    let id = ev["id"].as_i64().unwrap();
    let sw = hub.add_token("sw", "read").unwrap();
    let ga = hub.add_token("ga", "write").unwrap();
    assert_eq!(get_as(&hub, &sw, &format!("/api/v1/events/{id}")).0, 200);
    let (code, list) = get_as(&hub, &sw, "/api/v1/events");
    assert_eq!(code, 200);
    assert_eq!(list["items"][0]["id"], id, "{list}");
    assert_eq!(get_as(&hub, &ga, &format!("/api/v1/events/{id}")).0, 404);
    let (code, list) = get_as(&hub, &ga, "/api/v1/events");
    assert_eq!(
        (code, &list["items"]),
        (200, &Json::Array(vec![])),
        "{list}"
    );

    // 2. Back: the event clears; then kill -9: the last will raises it again (same case).
    edge.start().unwrap();
    wait_edge_event(&hub, 1, true, "edge.offline cleared by the edge's return");
    edge.kill9();
    wait_edge_event(&hub, 2, false, "edge.offline again on the last will");
    std::thread::sleep(PAST_ALLOWANCE);
    assert_only_the_edge_event(&hub, "after kill -9");

    // 3. Back with MH-0033 no longer simulated: only its own device.offline follows.
    sim.terminate(Duration::from_secs(20));
    sim = simulate(d, &seed, &site, "MH-0031,MH-0032", "2");
    edge.start().unwrap();
    wait_edge_event(&hub, 2, true, "edge.offline cleared by the second return");
    let silent = SENSORS[2].1;
    wait_for(
        "device.offline for MH-0033's component",
        Duration::from_secs(60),
        || {
            let all = events(&hub);
            (!of_type(&all, "device.offline").is_empty()).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{:#?}\n{}", events(&hub), hub.log_tail()));
    std::thread::sleep(PAST_ALLOWANCE);
    let all = events(&hub);
    let offline: Vec<&str> = of_type(&all, "device.offline")
        .iter()
        .filter_map(|e| e["component_id"].as_str())
        .collect();
    assert_eq!(offline, vec![silent], "{all:#?}");
    assert_eq!(of_type(&all, "edge.offline").len(), 1, "{all:#?}");
    sim.terminate(Duration::from_secs(20));
    edge.kill9();
    hub.kill9();
}
