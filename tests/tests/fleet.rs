//! Configuration from the hub, end to end with real processes: the hub (embedded broker),
//! a real edge, mosquitto as the site broker and firmware-sim streaming the whole demo site.
//! The operator changes a threshold and adds a sensor through the API, pushes a broken
//! config, a config that breaks the uplink, and kills the edge mid-apply; through all of it
//! every reading firmware-sim recorded is stored exactly once.

use serde_json::{json, Value as Json};
use std::time::Duration;
use wangge_testkit::{now_ns, Mosquitto, TestCerts};
use wangge_tests::system::{
    assert_hub_has_exactly, sim_stream_args_since, simulate, wait_every, Edge, Hub, ADMIN_TOKEN,
    EDGE_ID,
};

/// The sensor the operator adds: not in the registry seed, nor in the edge's sensors CSV.
const NEW_SENSOR: &str = "PG-9001";
/// The component it is attached to (a manhole of the seed: no other sensor of it measures
/// pressure, so its pressure series is the new sensor's).
const COMPONENT: &str = "1201110101000001";

/// `PUT /api/v1/edges/{EDGE_ID}/config` with `document`, as the admin: (status, body).
fn put_config(hub: &Hub, document: &str) -> (u16, Json) {
    put(
        hub,
        &format!("/api/v1/edges/{EDGE_ID}/config"),
        &json!({ "document": document }),
    )
}

fn put(hub: &Hub, path: &str, body: &Json) -> (u16, Json) {
    let r = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{}{path}", hub.http))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Json::Null))
}

/// Waits until the hub's view of the edge's config reports `version` with `outcome`; returns
/// the `applied` part.
fn wait_report(hub: &Hub, version: u64, outcome: &str, within: Duration) -> Json {
    let path = format!("/api/v1/edges/{EDGE_ID}/config");
    wait_every(
        &format!("the edge to report v{version} {outcome}"),
        within,
        Duration::from_millis(300),
        || {
            let j = hub.get(&path).ok()?;
            let a = &j["applied"];
            (a["version"].as_u64() == Some(version) && a["outcome"] == outcome).then(|| a.clone())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\nhub log: {}", hub.get(&path), hub.log_tail()))
}

/// Publishes one canonical reading of the new sensor on the site broker.
fn publish_new_sensor(site: &Mosquitto, seq: u64, pressure: f64) {
    let ts_ms = now_ns() / 1_000_000 - 60_000 + seq as i64;
    let payload = format!(r#"{{"ts":{ts_ms},"seq":{seq},"values":{{"pressure":{pressure}}}}}"#);
    let topic = format!("sensors/{NEW_SENSOR}/readings");
    assert!(wangge_testkit::mosquitto::publish(
        site.port,
        &["-q", "1", "-t", &topic, "-m", &payload]
    ));
}

/// The new sensor's stored pressure readings: (value, quality).
fn new_sensor_points(hub: &Hub) -> Vec<(f64, String)> {
    let j = hub
        .get(&format!(
            "/api/v1/components/{COMPONENT}/readings?quantity=pressure&step=raw&from=0&to={}",
            now_ns() / 1_000_000 + 60_000
        ))
        .unwrap();
    j["points"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let q = p["quality"].as_str().unwrap_or("").to_string();
                    (p["value"].as_f64().unwrap_or(f64::NAN), q)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn edge_metric(edge: &Edge, name: &str) -> f64 {
    let text = edge.metrics().unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_operator_reconfigures_an_edge_through_the_hub_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
    edge.start().unwrap();
    let started = now_ns();
    // 40 readings of the 300 s sensors take 4 min at scale 0.02: clocks from 12 h ago stay
    // behind the wall clock throughout (from 2 h ago they would pass it after ≈ 2.5 min).
    let args = sim_stream_args_since(dir.path(), site.port, 12, &["--count".into(), "40".into()]);
    let d = dir.path().to_path_buf();
    let sim = std::thread::spawn(move || simulate(&d, "fleet", &args));

    // The operator registers the new sensor at the hub. Before the edge knows it, its reading
    // of 0.8 MPa is good (the default range is 0–4) and the edge counts it as unregistered.
    let (status, _) = put(
        &hub,
        &format!("/api/v1/sensors/{NEW_SENSOR}"),
        &json!({"component_id": COMPONENT, "type": "pressure_gauge", "profile": "canonical",
                "interval_s": 60, "edge": EDGE_ID}),
    );
    assert!(status == 200 || status == 201, "PUT sensor: {status}");
    publish_new_sensor(&site, 1, 0.8);
    wait_every(
        "the unregistered reading counted",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (edge_metric(&edge, "edge_unregistered_readings_total") >= 1.0).then_some(()),
    )
    .unwrap();

    // v1 adds the sensor to the edge and lowers the pressure threshold.
    let (status, body) = put_config(
        &hub,
        &format!("[edge]\nsensors = [\"{NEW_SENSOR}\"]\n[validate.limits.pressure]\nmax = 0.5\n"),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["desired"]["version"], 1);
    let a = wait_report(&hub, 1, "applied", Duration::from_secs(30));
    assert_eq!(a["applied_version"], 1);
    let unregistered = edge_metric(&edge, "edge_unregistered_readings_total");
    publish_new_sensor(&site, 2, 0.8);
    publish_new_sensor(&site, 3, 0.3);
    let points = wait_every(
        "the new sensor's readings",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let p = new_sensor_points(&hub);
            (p.len() >= 3).then_some(p)
        },
    )
    .unwrap();
    assert_eq!(
        points,
        vec![
            (0.8, "good".into()),
            (0.8, "bad".into()),
            (0.3, "good".into())
        ],
        "the threshold applies from v1 on"
    );
    assert_eq!(
        edge_metric(&edge, "edge_unregistered_readings_total"),
        unregistered
    );
    let connects = edge_metric(&edge, "edge_uplink_connects_total");

    // v2 does not validate: refused with the field named; nothing restarts.
    let (status, _) = put_config(&hub, "[uplink]\nbatch_readings_max = 0\n");
    assert_eq!(status, 200);
    let a = wait_report(&hub, 2, "refused", Duration::from_secs(30));
    assert_eq!(a["applied_version"], 1);
    let error = a["error"].as_str().unwrap_or_default();
    assert!(error.contains("uplink.batch_readings_max"), "{error}");
    assert_eq!(
        edge_metric(&edge, "edge_uplink_connects_total"),
        connects,
        "nothing restarted"
    );

    // v3 breaks the uplink (a CA the hub's plain port does not speak): the edge rolls back
    // within its confirm window by itself and says so.
    let certs = TestCerts::make(dir.path());
    let pem = String::from_utf8(certs.ca_pem()).unwrap();
    let (status, _) = put_config(
        &hub,
        &format!("[hub]\nca_pem = '''\n{pem}'''\n[uplink]\nconfig_confirm_ms = 3000\n"),
    );
    assert_eq!(status, 200);
    let a = wait_report(&hub, 3, "rolled_back", Duration::from_secs(60));
    assert_eq!(a["applied_version"], 1);
    assert!(a["error"]
        .as_str()
        .unwrap_or_default()
        .contains("config_confirm_ms"));

    // v4 changes the uplink again; the edge is killed while it applies it, then started:
    // it comes up on a whole config (v1 or v4) and ends on v4.
    let (status, _) = put_config(&hub, "[uplink]\nbatch_age_ms = 100\n");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(150));
    edge.kill9();
    edge.start().unwrap();
    let a = wait_report(&hub, 4, "applied", Duration::from_secs(60));
    assert_eq!(a["applied_version"], 4);
    let j = hub.get(&format!("/api/v1/edges/{EDGE_ID}/config")).unwrap();
    assert_eq!(j["in_sync"], true, "{j}");

    let (record, _) = sim.join().unwrap().unwrap();
    assert!(
        record.len() > 1000,
        "firmware-sim streamed: {}",
        record.len()
    );
    assert_hub_has_exactly(&hub, &record, started, Duration::from_secs(120));
    edge.kill9();
    hub.kill9();
}
