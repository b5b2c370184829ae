//! The webhook SSRF guard over real HTTP (the events routes served on 127.0.0.1:0), with the
//! loopback switch OFF unless a test says otherwise: refused targets at subscription creation
//! (422 naming `url`) and at delivery (after DNS, in the client's resolver), redirects not
//! followed, attempts shown as a status and an error class, never a body; plus list cursors that
//! are cut after visibility and dispatch targets that must be registered departments.
//!
//! What loopback-only testing cannot show, plainly: a delivery to an allow-listed private or a
//! public address actually connecting (no such network here; the pure checks are unit tests in
//! `src/egress.rs`), and a redirect to a *link-local* target being refused by the guard (it is
//! never followed at all, which `webhook_redirect_to_loopback_is_not_followed` proves with the
//! loopback switch on, i.e. even where the guard would have let the second hop through).

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_events::delivery::WebhookConfig;
use wangge_events::egress::{Refusal, Stage};
use wangge_events::model::now_ns;
use wangge_events::store::SubscriptionSpec;
use wangge_events::{Events, EventsConfig};

fn config(allow: &[&str], insecure_allow_loopback: bool) -> EventsConfig {
    EventsConfig {
        webhooks: WebhookConfig {
            backoff_initial_ms: 50,
            backoff_max_ms: 200,
            poll_interval_ms: 50,
            timeout_ms: 2000,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            insecure_allow_loopback,
            ..WebhookConfig::default()
        },
        ..EventsConfig::defaults()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    events: Events,
    api: Api,
}

async fn setup(cfg: EventsConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::open(&dir.path().join("events.db"), cfg, directory()).unwrap();
    let api = Api::start(&events).await;
    Setup {
        _dir: dir,
        events,
        api,
    }
}

impl Setup {
    async fn subscribe(&self, token: &str, url: &str) -> (u16, Value) {
        self.api
            .post("/subscriptions", token, json!({ "url": url }))
            .await
    }

    /// How many requests the guard refused at `stage` for `reason`.
    fn refusals(&self, stage: Stage, reason: Refusal) -> u64 {
        self.events.egress().metrics().get(stage, reason)
    }

    /// A subscription of sw to `url` the guard accepts: its id.
    async fn subscribed(&self, url: &str) -> i64 {
        let (code, body) = self.subscribe("sw-write", url).await;
        assert_eq!(code, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Starts the webhook worker and raises an `event_type` event for it to deliver.
    fn deliver(&self, event_type: &str) -> tokio::task::JoinHandle<()> {
        let worker = tokio::spawn(wangge_events::delivery::run_webhooks(self.events.clone()));
        self.raise_manhole(event_type);
        worker
    }

    /// Waits (30 s at most) for the first delivery of `sub` to be `what` says, and returns it.
    async fn first_delivery(&self, sub: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually_some(what, Duration::from_secs(30), || async {
            let d = self.deliveries(sub).await;
            d.first().filter(|d| done(d)).cloned()
        })
        .await
    }

    /// A subscription stored as if it had passed an earlier check (a name whose DNS answer
    /// changed since, or a row from before the guard): only the delivery-time guard stands.
    fn stored_subscription(&self, url: &str) -> i64 {
        self.events
            .store()
            .create_subscription(SubscriptionSpec {
                url,
                secret: "a-secret-of-sixteen+",
                department: Some("sw"),
                event_types: &[],
                created_at_ns: now_ns(),
            })
            .unwrap()
            .id
    }

    fn raise_manhole(&self, event_type: &str) {
        self.events
            .store()
            .apply_condition(&raised(MANHOLE, event_type, now_ns() / S), now_ns())
            .unwrap()
            .unwrap();
        self.events
            .notify(self.events.store().last_cursor().unwrap());
    }

    async fn deliveries(&self, sub: i64) -> Vec<Value> {
        let (code, v) = self
            .api
            .get(&format!("/subscriptions/{sub}/deliveries"), "sw-read")
            .await;
        assert_eq!(code, 200, "{v}");
        v["items"].as_array().unwrap().clone()
    }
}

/// A delivery tried at least `n` times.
fn attempted(n: i64) -> impl Fn(&Value) -> bool {
    move |d| d["attempts"].as_i64() >= Some(n)
}

fn assert_refused(code: u16, body: &Value, reason: &str, url: &str) {
    assert_eq!(code, 422, "{url} must be refused: {body}");
    assert_eq!(body["error"]["code"], "refused_url", "{url}: {body}");
    assert_eq!(body["error"]["field"], "url", "{url}: {body}");
    let m = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("url") && m.contains(reason),
        "{url}: message names the field and {reason:?}: {m}"
    );
}

/// What a receiver saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A receiver on 127.0.0.1: `/hook` answers `answer`, `/redirect` answers 302 to `location`,
/// `/target` records and answers 204.
#[derive(Clone)]
struct Receiver {
    seen: Seen,
    location: String,
    answer: StatusCode,
}

async fn hook(State(r): State<Receiver>, _h: HeaderMap, _b: Bytes) -> impl IntoResponse {
    r.seen.0.lock().unwrap().push("hook".into());
    (r.answer, "SECRET-INTERNAL-BODY: admin password is hunter2")
}

async fn redirect(State(r): State<Receiver>) -> impl IntoResponse {
    r.seen.0.lock().unwrap().push("redirect".into());
    (StatusCode::FOUND, [(header::LOCATION, r.location.clone())])
}

async fn target(State(r): State<Receiver>) -> StatusCode {
    r.seen.0.lock().unwrap().push("target".into());
    StatusCode::NO_CONTENT
}

async fn receiver(location: &str, answer: StatusCode) -> (u16, Seen) {
    let r = Receiver {
        seen: Seen::default(),
        location: location.to_string(),
        answer,
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .route("/redirect", axum::routing::post(redirect))
        .route("/target", axum::routing::any(target))
        .with_state(r.clone());
    (serve(app).await.port(), r.seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_loopback_is_refused() {
    let s = setup(config(&[], false)).await;
    let (port, seen) = receiver("", StatusCode::NO_CONTENT).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://127.1.2.3:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        // The URL parser's odd IPv4 spellings are normalised before the check.
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
    ] {
        for token in ["sw-write", "admin-token"] {
            let (code, body) = s.subscribe(token, &url).await;
            assert_refused(code, &body, "loopback", &url);
        }
    }
    let (_, list) = s.api.get("/subscriptions", "admin-token").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
    let m = s.events.egress().metrics();
    assert_eq!(m.get(Stage::Subscribe, Refusal::Loopback), 12);

    // At delivery: a stored loopback subscription is refused before any connection.
    let sub = s.stored_subscription(&format!("http://127.0.0.1:{port}/hook"));
    let worker = s.deliver("test.loopback");
    let d = s
        .first_delivery(sub, "a refused attempt", attempted(1))
        .await;
    assert_eq!(d["last_error"], "refused_address", "{d}");
    assert_eq!(d["last_status"], Value::Null);
    assert_eq!(
        seen.count(),
        0,
        "the receiver on loopback was never reached"
    );
    assert!(m.get(Stage::Deliver, Refusal::Loopback) >= 1);
    let mut text = String::new();
    m.render_prometheus(&mut text);
    assert!(
        text.contains("wangge_webhook_refused_total{stage=\"deliver\",reason=\"loopback\"}"),
        "{text}"
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_link_local_metadata_address_is_refused() {
    // Even with the loopback switch on and a generous allow list, link-local, unspecified,
    // multicast and broadcast targets stay refused.
    let s = setup(config(&["10.0.0.0/8", "metadata.google.internal"], true)).await;
    for (url, reason) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:80/hook", "unspecified"),
        ("http://[::]:80/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://255.255.255.255/hook", "broadcast"),
    ] {
        let (code, body) = s.subscribe("sw-write", url).await;
        assert_refused(code, &body, reason, url);
    }
    assert_eq!(s.refusals(Stage::Subscribe, Refusal::LinkLocal), 4);
    // The allow list may not pretend to open them either.
    assert!(EventsConfig::defaults().webhooks.egress().is_ok());
    let bad = WebhookConfig {
        allow: vec!["169.254.0.0/16".into()],
        ..WebhookConfig::default()
    };
    assert!(bad.egress().is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(Events::open(
        &dir.path().join("e.db"),
        EventsConfig {
            webhooks: bad,
            ..EventsConfig::defaults()
        },
        directory()
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_a_name_resolving_to_loopback_is_refused() {
    let s = setup(config(&["localhost"], false)).await;
    let (port, seen) = receiver("", StatusCode::NO_CONTENT).await;
    let url = format!("http://localhost:{port}/hook");
    // `localhost` is 127.0.0.1 in /etc/hosts; allow-listing the name does not open loopback.
    let (code, body) = s.subscribe("sw-write", &url).await;
    assert_refused(code, &body, "loopback", &url);
    let (code, body) = s
        .subscribe("sw-write", "http://no-such-host.invalid/hook")
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(error_message(&body).contains("does not resolve"));

    // At delivery (the name was checked earlier, or its answer changed since): the resolver
    // refuses it and the client connects nowhere.
    let sub = s.stored_subscription(&url);
    let worker = s.deliver("test.rebind");
    let d = s
        .first_delivery(sub, "a refused attempt", attempted(2))
        .await;
    assert_eq!(d["last_error"], "refused_address", "{d}");
    assert_eq!(seen.count(), 0, "the loopback receiver was never reached");
    assert!(s.refusals(Stage::Deliver, Refusal::Loopback) >= 2);
    worker.abort();

    // The same name with the loopback switch on is delivered: the refusal above was the guard.
    let open = setup(config(&[], true)).await;
    let sub = open.subscribed(&url).await;
    let worker = open.deliver("test.rebind");
    open.first_delivery(sub, "delivered", |d| d["status"] == "delivered")
        .await;
    assert_eq!(seen.count(), 1);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_redirect_to_loopback_is_not_followed() {
    // The loopback switch is on so the first hop is permitted; the Location is a loopback URL
    // the guard would permit too, so only "redirects are never followed" keeps it unrequested.
    let s = setup(config(&[], true)).await;
    let (target_port, target_seen) = receiver("", StatusCode::NO_CONTENT).await;
    let (port, seen) = receiver(
        &format!("http://127.0.0.1:{target_port}/target"),
        StatusCode::NO_CONTENT,
    )
    .await;
    let sub = s
        .subscribed(&format!("http://127.0.0.1:{port}/redirect"))
        .await;
    let worker = s.deliver("test.redirect");
    let d = s
        .first_delivery(sub, "two failed attempts", attempted(2))
        .await;
    assert_eq!(d["status"], "pending", "a 3xx is a failed attempt: {d}");
    assert_eq!(d["last_status"], 302);
    assert_eq!(d["last_error"], "http_3xx");
    assert!(seen.count() >= 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(target_seen.count(), 0, "the Location was never requested");
    assert!(s.refusals(Stage::Deliver, Refusal::Redirect) >= 2);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_unless_allow_listed() {
    let s = setup(config(&[], false)).await;
    for url in [
        "http://10.12.3.4/hook",
        "http://172.20.0.1/hook",
        "http://192.168.1.10/hook",
        "http://100.64.0.7/hook",
        "http://[fd00::7]/hook",
        "http://[::ffff:10.12.3.4]/hook",
    ] {
        let (code, body) = s.subscribe("sw-write", url).await;
        assert_refused(code, &body, "private", url);
    }
    assert_eq!(s.refusals(Stage::Subscribe, Refusal::Private), 6);
    // Public addresses need no allow list.
    let (code, body) = s.subscribe("sw-write", "http://192.0.2.10/hook").await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_listed_cidr_is_accepted() {
    let s = setup(config(&["10.12.0.0/16", "fd00:12::/32"], false)).await;
    for url in ["http://10.12.3.4:8443/hook", "http://[fd00:12::9]/hook"] {
        let (code, body) = s.subscribe("sw-write", url).await;
        assert_eq!(code, 201, "{url}: {body}");
    }
    for url in ["http://10.13.0.1/hook", "http://[fd00:13::9]/hook"] {
        let (code, body) = s.subscribe("sw-write", url).await;
        assert_refused(code, &body, "private", url);
    }
    // And still not loopback.
    let (code, body) = s.subscribe("sw-write", "http://127.0.0.1:9/hook").await;
    assert_refused(code, &body, "loopback", "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_shows_its_status_and_error_class_never_the_body() {
    let s = setup(config(&[], true)).await;
    let (port, seen) = receiver("", StatusCode::INTERNAL_SERVER_ERROR).await;
    let sub = s.subscribed(&format!("http://127.0.0.1:{port}/hook")).await;
    let worker = s.deliver("test.body");
    let d = s
        .first_delivery(sub, "a failed attempt", attempted(1))
        .await;
    assert!(seen.count() >= 1);
    assert_eq!(d["last_status"], 500);
    assert_eq!(d["last_error"], "http_5xx");
    assert_eq!(d["history"][0]["error"], "http_5xx");
    let all = s.deliveries(sub).await;
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains("SECRET") && !text.contains("hunter2"),
        "no body: {text}"
    );
    worker.abort();
}

/// Raises `n` distinct events on `component` (one event type each), returns their ids.
fn raise_many(events: &Events, component: &str, tag: &str, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            events
                .store()
                .apply_condition(&raised(component, &format!("{tag}.{i}"), 1000), now_ns())
                .unwrap()
                .unwrap()
                .event
                .id
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_never_proves_a_hidden_event_exists() {
    let s = setup(config(&[], false)).await;
    // 25 events of xf only (smoke detector): sw sees none of them.
    raise_many(&s.events, SMOKE, "hidden", 25);
    for q in ["", "?limit=1", "?limit=10", "?limit=24", "?limit=1000"] {
        let (code, page) = s.api.get(&format!("/events{q}"), "sw-read").await;
        assert_eq!(code, 200);
        assert_eq!(page["items"], json!([]), "{q}");
        assert_eq!(page["next"], Value::Null, "an empty page has no next ({q})");
    }
    let (_, admin) = s.api.get("/events?limit=10", "admin-token").await;
    assert_eq!(admin["items"].as_array().unwrap().len(), 10);
    assert!(admin["next"].is_string(), "admin sees all, and a next page");

    // Interleaved: visible (sw) and hidden (xf) events, newest hidden ones first.
    let mut visible = Vec::new();
    for round in 0..7 {
        visible.extend(raise_many(&s.events, MANHOLE, &format!("seen{round}"), 2));
        raise_many(&s.events, SMOKE, &format!("more{round}"), 3);
    }
    visible.sort_unstable_by(|a, b| b.cmp(a));
    for limit in [1usize, 3, 5, 14, 100] {
        let mut got: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/events?limit={limit}&cursor={c}"),
                None => format!("/events?limit={limit}"),
            };
            let (code, page) = s.api.get(&q, "sw-read").await;
            assert_eq!(code, 200, "{page}");
            let ids: Vec<i64> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
                .collect();
            assert!(
                !ids.is_empty(),
                "no empty page while walking (limit {limit})"
            );
            assert!(ids.len() <= limit);
            got.extend(&ids);
            match page["next"].as_str() {
                Some(n) => {
                    assert_eq!(
                        n,
                        ids.last().unwrap().to_string(),
                        "the cursor is the last visible id, nothing hidden"
                    );
                    cursor = Some(n.to_string());
                }
                None => break,
            }
        }
        assert_eq!(
            got, visible,
            "every visible event once, in order (limit {limit})"
        );
    }
    // A page that ends exactly at the last visible event has no next.
    let (_, page) = s
        .api
        .get(&format!("/events?limit={}", visible.len()), "sw-read")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), visible.len());
    assert_eq!(page["next"], Value::Null);
    // A department that sees nothing at all: empty, no next.
    let (_, page) = s.api.get("/events?limit=2", "hb-write").await;
    assert_eq!(
        (page["items"].clone(), page["next"].clone()),
        (json!([]), Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_to_an_unknown_department_is_refused() {
    let s = setup(config(&[], false)).await;
    let id = raise_many(&s.events, MANHOLE, "dispatch", 1)[0];
    let (code, _) = s
        .api
        .transition(id, "sw-write", json!({"action": "acknowledge"}))
        .await;
    assert_eq!(code, 200);
    for token in ["sw-write", "admin-token"] {
        let (code, body) = s
            .api
            .transition(
                id,
                token,
                json!({"action": "dispatch", "department": "no-such-dept"}),
            )
            .await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["error"]["code"], "unknown_department");
        assert_eq!(body["error"]["field"], "department");
        assert!(error_message(&body).contains("department"));
    }
    let (_, e) = s.api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(
        e["status"], "acknowledged",
        "refused dispatches changed nothing"
    );
    let (code, e) = s
        .api
        .transition(
            id,
            "sw-write",
            json!({"action": "dispatch", "department": "hb"}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["department"], "hb");
}
