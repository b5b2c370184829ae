//! The HTTP routes served for real on 127.0.0.1:0: tokens, department isolation (403 + audit),
//! transitions and 409s, the SSE stream resumed with Last-Event-ID across a store reopen.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use wangge_events::lifecycle::Action;
use wangge_events::model::now_ns;
use wangge_events::rules::RuleInput;
use wangge_events::store::TransitionRequest;
use wangge_events::{Events, EventsConfig};

fn events_at(dir: &std::path::Path) -> Events {
    Events::open(
        &dir.join("events.db"),
        EventsConfig::defaults(),
        directory(),
    )
    .unwrap()
}

/// A fresh engine in a temporary directory (keep it while the engine runs), its API served.
async fn served() -> (tempfile::TempDir, Events, Api) {
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let api = Api::start(&events).await;
    (dir, events, api)
}

/// A manhole cover opened now: raises `manhole.displaced` through the default rules.
fn open_manhole(events: &Events, ts_ns: i64) -> i64 {
    let r = manhole_reading(protocol::Quantity::Opened, 1.0, ts_ns);
    let changes = events.ingest(&r, now_ns()).unwrap();
    assert_eq!(changes.len(), 1, "one change: {changes:?}");
    changes[0].event.id
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let (_dir, _events, api) = served().await;
    let r = api
        .client
        .get(format!("{}/events", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (code, _) = api.get("/events", "wrong").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn the_closed_loop_over_http_with_409_naming_the_allowed_actions() {
    let (_dir, events, api) = served().await;
    let id = open_manhole(&events, now_ns());

    let (code, list) = api
        .get("/events?status=open&type=manhole.displaced", "sw-read")
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next"], Value::Null);
    assert_eq!(list["items"][0]["id"], id);

    let (code, err) = api
        .transition(id, "sw-write", json!({"action": "resolve"}))
        .await;
    assert_eq!(code, 409);
    assert_eq!(err["error"]["code"], "invalid_transition");
    assert_eq!(err["error"]["allowed"], json!(["acknowledge"]));
    assert!(error_message(&err).contains("acknowledge"));

    let (code, err) = api
        .transition(id, "sw-write", json!({"action": "fly"}))
        .await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (code, err) = api
        .transition(id, "sw-read", json!({"action": "acknowledge"}))
        .await;
    assert_eq!(code, 403, "read-only token: {err}");

    for (action, dept, status) in [
        ("acknowledge", None, "acknowledged"),
        ("dispatch", Some("sw"), "dispatched"),
        ("start", None, "in_progress"),
        ("resolve", None, "resolved"),
        ("close", None, "closed"),
    ] {
        let mut body = json!({"action": action, "note": format!("{action} by wang")});
        if let Some(d) = dept {
            body["department"] = json!(d);
        }
        let (code, ev) = api.transition(id, "sw-write", body).await;
        assert_eq!(code, 200, "{action}: {ev}");
        assert_eq!(ev["status"], status);
    }
    let (code, ev) = api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(code, 200);
    let history = ev["history"].as_array().unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(history[2]["actor"], "sw/wang");
    assert_eq!(history[2]["department"], "sw");
    assert_eq!(history[5]["action"], "close");
    assert_eq!(ev["version"], 6);
}

#[tokio::test]
async fn a_department_sees_and_acts_only_on_what_is_shared_with_it_and_attempts_are_audited() {
    let (_dir, events, api) = served().await;
    let id = open_manhole(&events, now_ns());

    // hb (environment) is not named by any sharing rule for a manhole cover.
    let (code, list) = api.get("/events", "hb-write").await;
    assert_eq!(code, 200);
    assert!(list["items"].as_array().unwrap().is_empty());
    // A hidden event answers exactly like one that does not exist (no existence oracle).
    let (code, err) = api.get(&format!("/events/{id}"), "hb-write").await;
    let (_, missing) = api.get(&format!("/events/{}", id + 1000), "hb-write").await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(
        err["error"]["message"]
            .as_str()
            .map(|m| m.replace(&id.to_string(), "ID")),
        missing["error"]["message"]
            .as_str()
            .map(|m| m.replace(&(id + 1000).to_string(), "ID")),
        "same message as a missing event"
    );
    let (code, _) = api
        .transition(id, "hb-write", json!({"action": "acknowledge"}))
        .await;
    assert_eq!(code, 404);
    // xf sees the smoke detector's events, not this one; the owner department and admin see it.
    for (token, code) in [("xf-write", 404), ("sw-read", 200), ("admin-token", 200)] {
        let (got, body) = api.get(&format!("/events/{id}"), token).await;
        assert_eq!(got, code, "{token}: {body}");
    }

    let (code, audit) = api.get("/audit", "admin-token").await;
    assert_eq!(code, 200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{audit}");
    assert!(items
        .iter()
        .any(|a| a["department"] == "hb" && a["action"] == "acknowledge" && a["event_id"] == id));
    assert!(items
        .iter()
        .any(|a| a["department"] == "xf" && a["action"] == "read"));
    assert_eq!(api.get("/audit", "sw-write").await.0, 403);

    // Dispatched to hb, it becomes visible to hb.
    for body in [
        json!({"action": "acknowledge"}),
        json!({"action": "dispatch", "department": "hb"}),
    ] {
        api.transition(id, "sw-write", body).await;
    }
    assert_eq!(api.get(&format!("/events/{id}"), "hb-write").await.0, 200);
}

#[tokio::test]
async fn the_evaluation_report_per_department_and_component() {
    let (_dir, events, api) = served().await;
    let id = open_manhole(&events, now_ns());
    api.transition(id, "sw-write", json!({"action": "acknowledge"}))
        .await;
    let (code, report) = api.get("/reports/evaluation", "admin-token").await;
    assert_eq!(code, 200, "{report}");
    let depts = report["departments"].as_array().unwrap();
    let sw = depts.iter().find(|d| d["department"] == "sw").unwrap();
    assert_eq!(sw["events_received"], 1);
    assert_eq!(sw["acknowledged"], 1);
    assert!(sw["time_to_acknowledge_s"]["p50"].as_f64().unwrap() >= 0.0);
    assert_eq!(sw["overdue"], 0);
    assert!(depts.iter().any(|d| d["department"] == "cg"));
    assert_eq!(report["components"][0]["completeness"], 0.9);
    // A department sees only its own row.
    let (_, mine) = api.get("/reports/evaluation", "hb-write").await;
    assert_eq!(mine["departments"].as_array().unwrap().len(), 1);
    assert_eq!(mine["departments"][0]["events_received"], 0);
    let (code, _) = api
        .get("/reports/evaluation?from=yesterday", "admin-token")
        .await;
    assert_eq!(code, 400);
}

/// Reads SSE frames until `n` `id:`s have arrived; returns (id, data) pairs.
async fn read_sse(resp: reqwest::Response, n: usize) -> Vec<(i64, Value)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("SSE frames within 30 s")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let Some(id) = id {
                out.push((id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_sse_stream_resumes_from_last_event_id_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first_ids = {
        let events = events_at(dir.path());
        let api = Api::start(&events).await;
        let resp = stream(&api, "sw-read", None).await;
        assert_eq!(resp.status().as_u16(), 200);
        let id = open_manhole(&events, now_ns());
        act_as_wang(&events, id, Action::Acknowledge, None);
        let got = read_sse(resp, 2).await;
        assert_eq!(got[0].1["status"], "open");
        assert_eq!(got[1].1["status"], "acknowledged");
        assert!(got[0].0 < got[1].0);
        got
    };
    // "Restart": a new store handle on the same file, a new server. Changes happen while the
    // consumer is away; it resumes from the first id it saw and gets everything after it once.
    let events = events_at(dir.path());
    let api = Api::start(&events).await;
    let id = first_ids[0].1["id"].as_i64().unwrap();
    act_as_wang(&events, id, Action::Dispatch, Some("sw"));
    let resp = stream(&api, "sw-read", Some(first_ids[0].0)).await;
    let got = read_sse(resp, 2).await;
    assert_eq!(got[0].0, first_ids[1].0);
    assert_eq!(got[0].1["version"], 2);
    assert_eq!(got[1].1["status"], "dispatched");
    assert_eq!(got[1].1["version"], 3);
    // A department that does not see the event gets nothing of it (the smoke detector's event comes through).
    let resp = stream(&api, "xf-write", Some(0)).await;
    let smoke = RuleInput {
        component_id: SMOKE,
        component_type: "smoke_detector",
        sensor_id: "SD-0001",
        interval_s: 60,
        quantity: protocol::Quantity::Alarm,
        value: 1.0,
        ts_ns: now_ns(),
        quality: protocol::uplink::Quality::Good,
    };
    events.ingest(&smoke, now_ns()).unwrap();
    let got = read_sse(resp, 1).await;
    assert_eq!(got[0].1["type"], "fire.smoke");
}

/// `GET /events/stream` as `token`, resuming after `last_event_id` if given.
async fn stream(api: &Api, token: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let mut req = api
        .client
        .get(format!("{}/events/stream", api.base))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    req.send().await.unwrap()
}

/// `action` on event `id` (naming `department`) by wang of sw, straight through [`Events`].
fn act_as_wang(events: &Events, id: i64, action: Action, department: Option<&str>) {
    let req = TransitionRequest {
        action,
        department: department.map(str::to_string),
        note: None,
    };
    events
        .transition(id, &tokens().0["sw-write"], &req, now_ns())
        .unwrap();
}

#[tokio::test]
async fn subscriptions_belong_to_their_department_and_lists_page_with_next() {
    let (_dir, events, api) = served().await;
    let (code, sub) = api
        .post(
            "/subscriptions",
            "sw-write",
            // A public documentation address (TEST-NET-1): nothing is delivered in this test.
            json!({"url": "http://192.0.2.10:9/hook"}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(
        sub["secret"].as_str().unwrap().len(),
        64,
        "generated secret"
    );
    let sid = sub["id"].as_i64().unwrap();
    // Another department neither sees, reads nor deletes it; attempts are audited.
    let (_, list) = api.get("/subscriptions", "xf-write").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let sub_path = format!("/subscriptions/{sid}");
    assert_eq!(
        api.get(&format!("{sub_path}/deliveries"), "xf-write")
            .await
            .0,
        403
    );
    assert_eq!(api.delete(&sub_path, "xf-write").await, 403);
    for (token, body, code, why) in [
        (
            "sw-write",
            json!({"url": "http://x/", "department": "xf"}),
            403,
            "cannot subscribe for another department",
        ),
        ("sw-read", json!({"url": "http://x/"}), 403, "read-only"),
        ("sw-write", json!({"url": "ftp://x"}), 400, "not http(s)"),
    ] {
        let (got, err) = api.post("/subscriptions", token, body).await;
        assert_eq!(got, code, "{why}: {err}");
        if code == 400 {
            assert_eq!(err["error"]["code"], "bad_request");
        }
    }
    let (_, audit) = api.get("/audit", "admin-token").await;
    assert!(audit["items"].as_array().unwrap().len() >= 3);
    // The owner lists and deletes it.
    let (_, list) = api.get("/subscriptions", "sw-read").await;
    assert_eq!(list["items"][0]["id"], sid);
    assert!(
        list["items"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    assert_eq!(api.delete(&sub_path, "sw-write").await, 204);

    // Paging: 3 events, pages of 2.
    for ts in 1..=3 {
        let r = manhole_reading(protocol::Quantity::Battery, 10.0, ts * 1_000_000_000);
        events.ingest(&r, now_ns()).unwrap();
        let id = events.store().list(&Default::default()).unwrap()[0].id;
        for a in ["acknowledge", "dispatch", "start", "resolve", "close"] {
            let body = json!({"action": a, "department": "sw"});
            assert_eq!(api.transition(id, "admin-token", body).await.0, 200);
        }
        let clear = RuleInput {
            value: 90.0,
            ts_ns: ts * 1_000_000_000 + 500_000_000,
            ..r
        };
        events.ingest(&clear, now_ns()).unwrap();
    }
    let battery = "/events?limit=2&type=device.battery_low";
    let (_, page1) = api.get(battery, "sw-read").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_str().unwrap().to_string();
    let (_, page2) = api
        .get(&format!("{battery}&cursor={next}"), "sw-read")
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    let (code, err) = api.get("/events?colour=red", "sw-read").await;
    assert_eq!(code, 400);
    assert!(error_message(&err).contains("colour"));
}
