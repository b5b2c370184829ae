//! One stolen edge secret against the real system: a hub process (embedded broker behind its
//! gate), edge A as a real `edge run` fed by firmware-sim through a mosquitto site broker, and an
//! attacker holding edge B's issued credentials with stock mosquitto clients. While A streams,
//! B tries to read A's topics and every department's events, to take A's and the hub's client
//! ids, to publish on A's, event and unknown topics and to retain junk; each is refused, A's
//! readings keep being stored, and a revoked B is disconnected. A department's MQTT
//! credentials read exactly that department's subtree.
//!
//! The same principal rules are tried in-process, case by case, in
//! `hub/tests/broker_gate.rs`; this test proves them on the shipped binaries.

use std::time::Duration;
use wangge_testkit::{metric_sum, wait_for, Mosquitto, MosquittoSub};
use wangge_tests::system::{sim_stream_args, simulate, Edge, Hub, EDGE_ID};

const EDGE_B: &str = "edge-b";

/// `mosquitto_sub -v` as `user` with `client_id` on `filters`, its output lines collected.
struct Spy(MosquittoSub);

impl Spy {
    fn start(port: u16, user: &str, password: &str, client_id: &str, filters: &[&str]) -> Spy {
        let login = ["-u", user, "-P", password, "-i", client_id];
        Spy(MosquittoSub::start(port, &login, filters))
    }

    /// A spy that signs in as `user` and uses it as its client id, as a principal's own client
    /// would.
    fn own(port: u16, user: &str, password: &str, filters: &[&str]) -> Spy {
        Spy::start(port, user, password, user, filters)
    }

    fn topics_seen(&self) -> Vec<String> {
        self.0.messages("wangge/")
    }

    fn exits_within(&mut self, timeout: Duration) -> bool {
        self.0.exited_within(timeout).is_some()
    }
}

fn publish(port: u16, user: &str, password: &str, topic: &str, retain: bool) -> bool {
    let mut args = vec![
        "-q", "1", "-u", user, "-P", password, "-i", user, "-t", topic, "-m", "junk",
    ];
    if retain {
        args.push("-r");
    }
    wangge_testkit::mosquitto::publish(port, &args)
}

fn hub_metric(hub: &Hub, name: &str, labels: &[(&str, &str)]) -> f64 {
    reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", hub.http))
        .and_then(|r| r.text())
        .map(|m| metric_sum(&m, name, labels))
        .unwrap_or(f64::NAN)
}

/// What the hub's broker gate has refused of `what` (subscribe, publish, client_id, …).
fn refused(hub: &Hub, what: &str) -> f64 {
    hub_metric(hub, "wangge_broker_refused_total", &[("what", what)])
}

fn stored_readings(hub: &Hub) -> f64 {
    hub_metric(hub, "wangge_ingest_readings_stored_total", &[])
}

#[test]
fn a_stolen_edge_secret_reaches_nothing_but_its_own_edge() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    let out = hub.cli(&["edge", "add", EDGE_B]).output().unwrap();
    assert!(out.status.success());
    let b = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (sw_user, sw_secret) = hub.add_mqtt_user("sw").unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge_a = Edge::prepare(dir.path(), &hub, &site).unwrap();
    edge_a.start().unwrap();
    let sim_dir = dir.path().to_path_buf();
    let args = sim_stream_args(
        &sim_dir,
        site.port,
        &[
            "--duration".into(),
            "30s".into(),
            "--seed".into(),
            "7".into(),
        ],
    );
    let stream = std::thread::spawn(move || simulate(&sim_dir, "stream", &args));
    wait_for("edge A's readings stored", Duration::from_secs(60), || {
        (stored_readings(&hub) > 0.0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge_a.log_tail()));

    // Reading what is not B's: each subscription refused, nothing ever delivered.
    let a_all = format!("wangge/v1/edges/{EDGE_ID}/#");
    let a_acks = format!("wangge/v1/edges/{EDGE_ID}/acks");
    let mut spies: Vec<Spy> = Vec::new();
    for f in [
        a_all.as_str(),
        a_acks.as_str(),
        "wangge/v1/edges/+/batches",
        "wangge/v1/events/#",
        "#",
    ] {
        let before = refused(&hub, "subscribe");
        spies.push(Spy::own(hub.mqtt, EDGE_B, &b, &[f]));
        wait_for("the subscription refused", Duration::from_secs(10), || {
            (refused(&hub, "subscribe") > before).then_some(())
        })
        .unwrap();
    }

    // Taking over A's or the hub's client ids: refused at CONNECT.
    for client_id in [EDGE_ID, "wangge-hub-ingest"] {
        let mut s = Spy::start(hub.mqtt, EDGE_B, &b, client_id, &["x"]);
        assert!(
            s.exits_within(Duration::from_secs(10)),
            "{client_id} kept open"
        );
    }
    assert!(refused(&hub, "client_id") >= 2.0);

    // Publishing where B may not: each connection cut, nothing acknowledged.
    for (topic, retain) in [
        (format!("wangge/v1/edges/{EDGE_ID}/batches"), false),
        (format!("wangge/v1/edges/{EDGE_ID}/status"), true),
        (format!("wangge/v1/edges/{EDGE_ID}/acks"), false),
        ("wangge/v1/events/sw/manhole.displaced".to_string(), false),
        ("district/unknown".to_string(), false),
        (format!("wangge/v1/edges/{EDGE_B}/batches"), true),
    ] {
        assert!(
            !publish(hub.mqtt, EDGE_B, &b, &topic, retain),
            "{topic} accepted"
        );
    }
    assert!(refused(&hub, "publish") >= 6.0);

    // Meanwhile A's readings still flow in: the ingest link was never taken over.
    let before = stored_readings(&hub);
    wait_for(
        "more of A's readings stored",
        Duration::from_secs(30),
        || (stored_readings(&hub) > before).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", hub.log_tail()));
    let _ = stream.join();
    for s in &spies {
        assert!(
            s.topics_seen().is_empty(),
            "edge B read {:?}",
            s.topics_seen()
        );
    }

    // The department's own credentials: its subtree yes, anything wider no.
    let mut wide = Spy::own(hub.mqtt, &sw_user, &sw_secret, &["wangge/v1/events/#"]);
    let _ = wide.exits_within(Duration::from_secs(2));
    assert!(wide.topics_seen().is_empty());
    drop(wide);
    let mut own = Spy::own(hub.mqtt, &sw_user, &sw_secret, &["wangge/v1/events/sw/#"]);
    assert!(
        !own.exits_within(Duration::from_secs(2)),
        "sw's own subtree refused"
    );

    // Revoking B closes its open connection (its own acks subscription), and it cannot return.
    let b_acks = format!("wangge/v1/edges/{EDGE_B}/acks");
    let mut b_session = Spy::own(hub.mqtt, EDGE_B, &b, &[&b_acks]);
    assert!(
        !b_session.exits_within(Duration::from_secs(2)),
        "B's own session refused"
    );
    let out = hub.cli(&["edge", "revoke", EDGE_B]).output().unwrap();
    assert!(out.status.success());
    assert!(
        b_session.exits_within(Duration::from_secs(10)),
        "a revoked edge's open connection stayed open"
    );
    assert!(
        hub_metric(
            &hub,
            "wangge_broker_connections_closed_total",
            &[("reason", "revoked")]
        ) >= 1.0
    );
    assert!(!own.exits_within(Duration::from_millis(100)));
}
