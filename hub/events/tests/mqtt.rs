//! MQTT delivery seen by a real `mosquitto_sub`: one message per receiving department on
//! `wangge/v1/events/{department}/{type}`, published through a real broker (mosquitto).

mod common;

use common::*;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::time::{Duration, Instant};
use wangge_events::model::now_ns;
use wangge_events::{Events, EventsConfig};
use wangge_testkit::{Mosquitto, MosquittoSub};

/// The probe topic that shows mosquitto_sub is subscribed.
const PROBE: &str = "wangge/v1/events/probe/probe";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_per_department_and_seen_by_mosquitto_sub() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let port = broker.port;
    let sub = MosquittoSub::start(port, &["-q", "1"], &["wangge/v1/events/#"]);

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
    sub.wait_subscribed(port, PROBE);

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
    let r = manhole_reading(protocol::Quantity::Opened, 1.0, now_ns());
    let change = events.ingest(&r, now_ns()).unwrap().remove(0);

    let deadline = Instant::now() + Duration::from_secs(30);
    let events_seen = || -> Vec<String> {
        sub.messages("wangge/v1/events/")
            .into_iter()
            .filter(|l| !l.starts_with(PROBE))
            .collect()
    };
    while events_seen().len() < 3 {
        assert!(Instant::now() < deadline, "3 event messages within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut topics = Vec::new();
    for line in events_seen().into_iter().take(3) {
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
    eventually_some("mqtt cursor saved", Duration::from_secs(30), || {
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
