//! MQTT delivery seen by a real `mosquitto_sub`: one message per receiving department on
//! `wangge/v1/events/{department}/{type}`, published through a real broker (mosquitto).

mod common;

use common::*;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wangge_events::model::now_ns;
use wangge_events::rules::RuleInput;
use wangge_events::{Events, EventsConfig};

/// Kills the child process (by its PID) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto(dir: &std::path::Path, port: u16) -> Killed {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\n"),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed (scripts/install-test-deps)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Killed(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_per_department_and_seen_by_mosquitto_sub() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = mosquitto(dir.path(), port);
    let mut sub = Killed(
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-v",
                "-t",
                "wangge/v1/events/#",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub is installed"),
    );
    let (tx, lines) = mpsc::channel::<String>();
    let out = sub.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut opts = MqttOptions::new("wangge-hub-events-test", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    // Wait until mosquitto_sub is subscribed: publish probes until one comes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        client
            .publish(
                "wangge/v1/events/probe/probe",
                QoS::AtLeastOnce,
                false,
                "probe",
            )
            .await
            .unwrap();
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("wangge/v1/events/probe/probe") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "mosquitto_sub never saw a probe");
    }
    while lines.try_recv().is_ok() {}

    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        directory(),
    )
    .unwrap();
    let publisher = client.clone();
    let task = tokio::spawn(wangge_events::delivery::run_mqtt(
        events.clone(),
        move |topic, payload| {
            let c = publisher.clone();
            async move {
                c.publish(topic, QoS::AtLeastOnce, false, payload.into_bytes())
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    ));
    // Let the publisher read its starting cursor before the event happens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = RuleInput {
        component_id: MANHOLE,
        component_type: "manhole_cover",
        sensor_id: "MH-0001",
        interval_s: 60,
        quantity: protocol::Quantity::Opened,
        value: 1.0,
        ts_ns: now_ns(),
        quality: protocol::uplink::Quality::Good,
    };
    let change = events.ingest(&r, now_ns()).unwrap().remove(0);

    let mut topics = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while topics.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("3 event messages within 30 s");
        let (topic, payload) = line.split_once(' ').unwrap();
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["id"], change.event.id);
        assert_eq!(v["type"], "manhole.displaced");
        topics.push(topic.to_string());
    }
    topics.sort();
    assert_eq!(
        topics,
        vec![
            "wangge/v1/events/cg/manhole.displaced",
            "wangge/v1/events/jd/manhole.displaced",
            "wangge/v1/events/sw/manhole.displaced",
        ]
    );
    // The publisher's position is durable.
    let store = events.store().clone();
    let cursor = change.cursor;
    eventually("mqtt cursor saved", || {
        let store = store.clone();
        async move {
            (store
                .get_cursor(wangge_events::delivery::MQTT_CURSOR)
                .unwrap()
                == cursor)
                .then_some(())
        }
    })
    .await;
    task.abort();
}
