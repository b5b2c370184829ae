//! Publishing to a real mosquitto, seen by a real `mosquitto_sub`: messages per topic equal the
//! summary, and what the subscriber decodes is exactly the `--record` file.

mod common;

use common::*;
use std::time::{Duration, Instant};
use wangge_testkit::{free_port, Mosquitto, MosquittoSub};

/// `mosquitto_sub -v -t '#'`, once a probe came through (the subscription is live).
fn subscribe(port: u16) -> MosquittoSub {
    let sub = MosquittoSub::start(port, &["-q", "1"], &["#"]);
    sub.wait_subscribed(port, "probe/ready");
    sub
}

#[test]
fn mosquitto_sub_sees_exactly_what_the_summary_says() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let port = broker.port;
    let sub = subscribe(port);
    let summary = run_sim(
        faults_sim(
            "canonical,acme,lumen,gridsense",
            "4s",
            &dir.path().join("record.jsonl"),
        )
        .args(["--mqtt", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(60),
    );
    let mqtt = &summary["mqtt"];
    let published = mqtt["published"].as_u64().unwrap();
    assert!(published > 500, "{published} messages is too few");
    assert_eq!(
        mqtt["acked"].as_u64().unwrap(),
        published,
        "the broker acked everything"
    );

    // Wait (bounded) until the subscriber has everything; then nothing more may come.
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = || {
        sub.stdout()
            .iter()
            .filter(|l| !l.starts_with("probe/"))
            .count() as u64
    };
    while count() < published && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let seen: Vec<String> = sub
        .stdout()
        .iter()
        .filter(|l| !l.starts_with("probe/"))
        .cloned()
        .collect();
    assert_eq!(seen.len() as u64, published);

    let mut per_topic = std::collections::BTreeMap::<String, u64>::new();
    let mut got = Readings::new();
    for line in &seen {
        let (topic, payload) = line.split_once(' ').expect("`-v` prints TOPIC PAYLOAD");
        *per_topic.entry(topic.to_string()).or_default() += 1;
        decode_mqtt(topic, payload.as_bytes(), &mut got);
    }
    let want_topics: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(mqtt["topics"].clone()).unwrap();
    assert_eq!(per_topic, want_topics);
    // A sensor with its own topic: messages seen there = its `messages` in the summary.
    for (id, s) in summary["sensors"].as_object().unwrap() {
        let topic = match s["profile"].as_str().unwrap() {
            "canonical" => format!("sensors/{id}/readings"),
            "acme" => format!("acme/{id}/data"),
            "lumen" => format!("lumen/v2/telemetry/{id}"),
            _ => continue,
        };
        assert_eq!(
            per_topic.get(&topic).copied().unwrap_or(0),
            s["messages"].as_u64().unwrap(),
            "{id}"
        );
    }
    assert!(summary["totals"]["duplicates_sent"].as_u64().unwrap() > 0);
    assert_same_readings(&got, &read_record(&dir.path().join("record.jsonl")));
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let port = free_port();
    let child = spawn_sim(sim().args([
        "--mqtt",
        &format!("127.0.0.1:{port}"),
        "--mqtt-connect-timeout",
        "1s",
        "--count",
        "1",
    ]));
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot connect to the MQTT broker at 127.0.0.1:{port}"
        )),
        "{err}"
    );
}
