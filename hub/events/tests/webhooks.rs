//! Webhooks against a real HTTP receiver: signature, retries with backoff, attempts visible in the
//! API, and a durable outbox across a hub restart and a receiver outage.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_events::delivery::WebhookConfig;
use wangge_events::model::now_ns;
use wangge_events::rules::RuleInput;
use wangge_events::{Events, EventsConfig};

const SECRET: &str = "a-shared-secret-of-the-platform";

#[derive(Clone, Default)]
struct Receiver {
    /// Requests seen: (headers, raw body).
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answer 500 to this many first requests.
    fail_first: usize,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = r.seen.lock().unwrap();
    seen.push((headers, body));
    if seen.len() <= r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

impl Receiver {
    /// Waits (30 s at most) until `n` requests have arrived; all requests seen then.
    async fn requests(&self, what: &str, n: usize) -> Vec<(HeaderMap, Bytes)> {
        eventually_some(what, Duration::from_secs(30), || {
            let seen = self.seen.clone();
            async move {
                let s = seen.lock().unwrap();
                (s.len() >= n).then(|| s.clone())
            }
        })
        .await
    }
}

fn receiver_app(r: Receiver) -> axum::Router {
    axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r)
}

fn config() -> EventsConfig {
    EventsConfig {
        webhooks: WebhookConfig {
            backoff_initial_ms: 50,
            backoff_max_ms: 200,
            poll_interval_ms: 100,
            // The receivers of these tests listen on 127.0.0.1, the only address this machine
            // may use; the guard itself is tested with the switch off in webhook_guard.rs.
            insecure_allow_loopback: true,
            ..WebhookConfig::default()
        },
        ..EventsConfig::defaults()
    }
}

fn raise(events: &Events, component: &str, ctype: &str, q: protocol::Quantity) {
    let r = RuleInput {
        component_id: component,
        component_type: ctype,
        sensor_id: component,
        interval_s: 60,
        quantity: q,
        value: 1.0,
        ts_ns: now_ns(),
        quality: protocol::uplink::Quality::Good,
    };
    assert_eq!(events.ingest(&r, now_ns()).unwrap().len(), 1);
}

/// The manhole cover (shared with sw) opened now.
fn open_manhole(events: &Events) {
    raise(events, MANHOLE, "manhole_cover", protocol::Quantity::Opened);
}

async fn subscribe(api: &Api, url: &str) -> i64 {
    let body = json!({"url": url, "secret": SECRET});
    let (code, v) = api.post("/subscriptions", "sw-write", body).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["department"], "sw");
    assert_eq!(v["secret"], SECRET);
    v["id"].as_i64().unwrap()
}

async fn deliveries(api: &Api, sub: i64) -> Vec<Value> {
    let (_, v) = api
        .get(&format!("/subscriptions/{sub}/deliveries"), "sw-read")
        .await;
    v["items"].as_array().unwrap().clone()
}

/// Waits (30 s at most) until the deliveries of `sub` are as `done` says; returns them.
async fn deliveries_when(
    api: &Api,
    sub: i64,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually_some(what, Duration::from_secs(30), || async {
        let items = deliveries(api, sub).await;
        done(&items).then_some(items)
    })
    .await
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried_until_the_receiver_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::open(&dir.path().join("events.db"), config(), directory()).unwrap();
    let api = Api::start(&events).await;
    let receiver = Receiver {
        fail_first: 2,
        ..Receiver::default()
    };
    let hook = format!(
        "http://{}/hook",
        serve(receiver_app(receiver.clone())).await
    );
    let sub = subscribe(&api, &hook).await;
    let worker = tokio::spawn(wangge_events::delivery::run_webhooks(events.clone()));

    // Not shared with sw: never delivered to this subscription.
    raise(&events, SMOKE, "smoke_detector", protocol::Quantity::Alarm);
    open_manhole(&events);

    let seen = receiver.requests("3 attempts", 3).await;
    let first_body = &seen[0].1;
    let mut uids = Vec::new();
    for (headers, body) in &seen {
        assert_eq!(body, first_body, "every attempt carries the same bytes");
        let sig = headers["x-wangge-signature"].to_str().unwrap();
        assert_eq!(sig, hmac_hex(body));
        assert!(wangge_events::delivery::verify(SECRET, body, sig));
        assert!(!wangge_events::delivery::verify(
            "another-secret",
            body,
            sig
        ));
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["component_id"], MANHOLE);
        assert_eq!(
            headers["x-wangge-event-id"].to_str().unwrap(),
            event["id"].to_string()
        );
        uids.push(headers["x-wangge-delivery"].to_str().unwrap().to_string());
    }
    uids.dedup();
    assert_eq!(
        uids.len(),
        seen.len(),
        "X-Wangge-Delivery is unique per attempt"
    );

    let items = deliveries_when(&api, sub, "delivered status", |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(
        items.len(),
        1,
        "only the manhole event is shared with sw: {items:?}"
    );
    assert_eq!(items[0]["attempts"], 3);
    let codes: Vec<i64> = items[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 204]);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notification_is_lost_across_a_hub_restart_during_a_receiver_outage() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on yet: the receiver is "down".
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hook = format!("http://127.0.0.1:{port}/hook");
    let (sub, id) = {
        let events = Events::open(&dir.path().join("events.db"), config(), directory()).unwrap();
        let api = Api::start(&events).await;
        let sub = subscribe(&api, &hook).await;
        let worker = tokio::spawn(wangge_events::delivery::run_webhooks(events.clone()));
        open_manhole(&events);
        let failed = deliveries_when(&api, sub, "a failed attempt", |items| {
            items
                .first()
                .is_some_and(|d| d["attempts"].as_i64().unwrap() >= 2)
        })
        .await;
        assert_eq!(failed[0]["status"], "pending");
        assert!(failed[0]["last_error"].is_string());
        worker.abort();
        let _ = worker.await;
        (sub, failed[0]["event_id"].as_i64().unwrap())
    };
    // The hub restarts; the receiver comes back on its port.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = receiver_app(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let events = Events::open(&dir.path().join("events.db"), config(), directory()).unwrap();
    let worker = tokio::spawn(wangge_events::delivery::run_webhooks(events.clone()));
    let seen = receiver.requests("delivery after restart", 1).await;
    let event: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(event["id"], id);
    let store = events.store().clone();
    let d = eventually_some("delivered", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let d = store.deliveries(sub, 10).unwrap();
            (d[0].0.status == "delivered").then_some(d)
        }
    })
    .await;
    assert!(
        d[0].1.len() >= 3,
        "failed attempts before the restart are kept"
    );
    worker.abort();
}
