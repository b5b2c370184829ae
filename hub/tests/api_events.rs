//! `hub serve` wired end to end: an edge publishes a sealed batch over MQTT to the embedded
//! broker → ingest stores and acks → the readings are readable once through the API → the
//! events engine raises the catalogue's event, visible under `/api/v1/events` with the hub's
//! tokens. Real processes and sockets, temp dir, killed by PID on drop.

mod hub_cli_support;
mod ingest_support;

use hub_cli_support::{displaced_cover_tilt, hub_cli, ok_json, serve};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wangge_testkit::now_ns;

const ADMIN: &str = "events-admin-93c1a7e5f02b48d6c9e0a1f3b57d";
const COMPONENT: &str = "1201110101000001"; // water-supply manhole cover, owner sw, sensor MH-0001

struct Hub {
    serve: wangge_testkit::hub::HubServe,
    base: String,
    mqtt_port: u16,
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Json) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Json::Null))
}

#[tokio::test]
async fn an_edge_batch_is_stored_acked_readable_once_and_raises_the_catalogue_event() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub_cli(&data, &["registry", "import", seed.to_str().unwrap()]);
    let secret = hub_cli(&data, &["edge", "add", "edge-xq-01"]);
    let sw_write = hub_cli(
        &data,
        &["token", "add", "--department", "sw", "--scope", "write"],
    );
    let serve = serve(dir.path(), "hub.log", ADMIN)
        .data_dir(&data)
        .answering()
        .start()
        .unwrap();
    let hub = Hub {
        base: format!("{}/api/v1", serve.base()),
        mqtt_port: serve.mqtt,
        serve,
    };
    let http = reqwest::Client::new();

    // The edge: logs in with its issued secret (client id = edge id), waits for its acks.
    let mut edge = ingest_support::login(hub.mqtt_port, "edge-xq-01", &secret).await;
    let (sub_tx, mut subscribed) = tokio::sync::mpsc::channel::<()>(2);
    let (mqtt_ev_tx, mut mqtt_events) = tokio::sync::mpsc::channel::<(String, Json)>(100);
    // The platform side: the owner department's MQTT consumer, with credentials the hub issued;
    // it may read its own subtree only.
    let issued = hub_cli(&data, &["mqtt-user", "add", "--department", "sw"]);
    let (sw_user, sw_secret) = issued
        .split_once('\n')
        .expect("username and password lines");
    let mut opts = MqttOptions::new(sw_user, "127.0.0.1", hub.mqtt_port);
    opts.set_credentials(sw_user, sw_secret.trim());
    opts.set_keep_alive(Duration::from_secs(10));
    let (dept, mut dept_el) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            match dept_el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = dept
                        .subscribe("wangge/v1/events/sw/#", QoS::AtLeastOnce)
                        .await;
                }
                Ok(Event::Incoming(Packet::SubAck(a))) => {
                    assert!(
                        a.return_codes
                            .iter()
                            .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                        "the department's own subtree must be granted: {a:?}"
                    );
                    let _ = sub_tx.try_send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(j) = serde_json::from_slice::<Json>(&p.payload) {
                        let _ = mqtt_ev_tx.send((p.topic.clone(), j)).await;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), subscribed.recv())
        .await
        .expect("the department logged in and subscribed within 30 s");

    // 21 readings, 1 s apart, tilt 25° (> 15° for ≥ 10 s → manhole.displaced, critical).
    let (t0, readings) = displaced_cover_tilt();
    let batch = ingest_support::batch("edge-xq-01", 1, 1, readings);
    let ack = edge
        .deliver(&batch, &protocol::uplink::mac_key(&secret))
        .await;
    assert_eq!((ack.epoch, ack.seq), (1, 1));

    // Stored before the ack: readable exactly once right away.
    let (s, body) = get(
        &http,
        &format!(
            "{}/components/{COMPONENT}/readings?quantity=tilt&from={}&to={}",
            hub.base,
            t0 / 1_000_000,
            t0 / 1_000_000 + 60_000
        ),
        &sw_write,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["points"].as_array().unwrap().len(), 21, "{body}");

    // The event, raised by the rules thread shortly after.
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let (s, body) = get(
            &http,
            &format!("{}/events?component={COMPONENT}", hub.base),
            ADMIN,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        if let Some(e) = body["items"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["type"] == "manhole.displaced"))
        {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no manhole.displaced event in 30 s: {body}\n{}",
            hub.serve.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["status"], "open");
    assert_eq!(event["count"], 1);

    // Delivered over MQTT to the owner department's consumer, with the same Event JSON; it
    // sees its own subtree only.
    let want = "wangge/v1/events/sw/manhole.displaced";
    let mut seen = Vec::new();
    while !seen.iter().any(|t| t == want) {
        let (topic, body) = tokio::time::timeout(Duration::from_secs(30), mqtt_events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {want} within 30 s; saw {seen:?}"))
            .unwrap();
        assert!(topic.starts_with("wangge/v1/events/sw/"), "{topic}");
        if body["id"] == event["id"] {
            assert_eq!(body["type"], "manhole.displaced");
            seen.push(topic);
        }
    }

    // The component's status follows its events (in the registry, so filters see it).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, c) = get(
            &http,
            &format!("{}/components/{COMPONENT}", hub.base),
            ADMIN,
        )
        .await;
        if c["status"] == "alarm" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "component status stayed {}",
            c["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, list) = get(
        &http,
        &format!("{}/components?status=alarm", hub.base),
        ADMIN,
    )
    .await;
    assert_eq!(list["items"][0]["id"], COMPONENT, "{list}");

    // The owner department's write token acts on it through the hub's token store.
    ok_json(
        http.post(format!("{}/events/{}/transitions", hub.base, event["id"]))
            .bearer_auth(&sw_write)
            .json(&json!({"action": "acknowledge", "note": "on our way"})),
    )
    .await;
    // Data completeness in the evaluation report counts MH-0001 from its registration (the
    // hub's seed, moments ago): its 21 reports, sent a minute before, are not of that part.
    let from_ms = t0 / 1_000_000 - 3_600_000;
    let (s, report) = get(
        &http,
        &format!(
            "{}/reports/evaluation?from={from_ms}&to={}",
            hub.base,
            now_ns() / 1_000_000 + 1000
        ),
        ADMIN,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let c = report["components"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["component_id"] == COMPONENT))
        .unwrap_or_else(|| panic!("no completeness for {COMPONENT}: {report}"))
        .clone();
    let expected = c["expected"].as_u64().unwrap_or(u64::MAX);
    assert!(expected <= 2, "{c}");
    assert!(c["received"].as_u64() <= Some(expected), "{c}");

    // Without a token: 401, as on every other route.
    let r = http
        .get(format!("{}/events", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
