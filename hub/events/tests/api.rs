//! The HTTP routes served for real on 127.0.0.1:0: tokens, department isolation (403 + audit),
//! transitions and 409s, the SSE stream resumed with Last-Event-ID across a store reopen.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use wangge_events::model::now_ns;
use wangge_events::rules::RuleInput;
use wangge_events::{Events, EventsConfig};

fn events_at(dir: &std::path::Path) -> Events {
    Events::open(
        &dir.join("events.db"),
        EventsConfig::defaults(),
        directory(),
    )
    .unwrap()
}

async fn start(events: &Events) -> String {
    let app = axum::Router::new().nest("/api/v1", wangge_events::router(events.clone(), tokens()));
    format!("http://{}/api/v1", serve(app).await)
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
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let base = start(&events).await;
    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/events")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (code, _) = get(&client, &format!("{base}/events"), "wrong").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn the_closed_loop_over_http_with_409_naming_the_allowed_actions() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let base = start(&events).await;
    let client = reqwest::Client::new();
    let id = open_manhole(&events, now_ns());

    let (code, list) = get(
        &client,
        &format!("{base}/events?status=open&type=manhole.displaced"),
        "sw-read",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next"], Value::Null);
    assert_eq!(list["items"][0]["id"], id);

    let url = format!("{base}/events/{id}/transitions");
    let (code, err) = post(&client, &url, "sw-write", json!({"action": "resolve"})).await;
    assert_eq!(code, 409);
    assert_eq!(err["error"]["code"], "invalid_transition");
    assert_eq!(err["error"]["allowed"], json!(["acknowledge"]));
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("acknowledge"));

    let (code, err) = post(&client, &url, "sw-write", json!({"action": "fly"})).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (code, err) = post(&client, &url, "sw-read", json!({"action": "acknowledge"})).await;
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
        let (code, ev) = post(&client, &url, "sw-write", body).await;
        assert_eq!(code, 200, "{action}: {ev}");
        assert_eq!(ev["status"], status);
    }
    let (code, ev) = get(&client, &format!("{base}/events/{id}"), "sw-read").await;
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
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let base = start(&events).await;
    let client = reqwest::Client::new();
    let id = open_manhole(&events, now_ns());

    // hb (environment) is not named by any sharing rule for a manhole cover.
    let (code, list) = get(&client, &format!("{base}/events"), "hb-write").await;
    assert_eq!(code, 200);
    assert!(list["items"].as_array().unwrap().is_empty());
    // A hidden event answers exactly like one that does not exist (no existence oracle).
    let (code, err) = get(&client, &format!("{base}/events/{id}"), "hb-write").await;
    let (_, missing) = get(&client, &format!("{base}/events/{}", id + 1000), "hb-write").await;
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
    let (code, _) = post(
        &client,
        &format!("{base}/events/{id}/transitions"),
        "hb-write",
        json!({"action": "acknowledge"}),
    )
    .await;
    assert_eq!(code, 404);
    // xf sees the smoke detector's events, not this one.
    let (code, _) = get(&client, &format!("{base}/events/{id}"), "xf-write").await;
    assert_eq!(code, 404);
    // The owner department and admin see it.
    assert_eq!(
        get(&client, &format!("{base}/events/{id}"), "sw-read")
            .await
            .0,
        200
    );
    assert_eq!(
        get(&client, &format!("{base}/events/{id}"), "admin-token")
            .await
            .0,
        200
    );

    let (code, audit) = get(&client, &format!("{base}/audit"), "admin-token").await;
    assert_eq!(code, 200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{audit}");
    assert!(items
        .iter()
        .any(|a| a["department"] == "hb" && a["action"] == "acknowledge" && a["event_id"] == id));
    assert!(items
        .iter()
        .any(|a| a["department"] == "xf" && a["action"] == "read"));
    assert_eq!(
        get(&client, &format!("{base}/audit"), "sw-write").await.0,
        403
    );

    // Dispatched to hb, it becomes visible to hb.
    post(
        &client,
        &format!("{base}/events/{id}/transitions"),
        "sw-write",
        json!({"action": "acknowledge"}),
    )
    .await;
    post(
        &client,
        &format!("{base}/events/{id}/transitions"),
        "sw-write",
        json!({"action": "dispatch", "department": "hb"}),
    )
    .await;
    assert_eq!(
        get(&client, &format!("{base}/events/{id}"), "hb-write")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_evaluation_report_per_department_and_component() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let base = start(&events).await;
    let client = reqwest::Client::new();
    let id = open_manhole(&events, now_ns());
    post(
        &client,
        &format!("{base}/events/{id}/transitions"),
        "sw-write",
        json!({"action": "acknowledge"}),
    )
    .await;
    let (code, report) = get(
        &client,
        &format!("{base}/reports/evaluation"),
        "admin-token",
    )
    .await;
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
    let (_, mine) = get(&client, &format!("{base}/reports/evaluation"), "hb-write").await;
    assert_eq!(mine["departments"].as_array().unwrap().len(), 1);
    assert_eq!(mine["departments"][0]["events_received"], 0);
    let (code, _) = get(
        &client,
        &format!("{base}/reports/evaluation?from=yesterday"),
        "admin-token",
    )
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
    let client = reqwest::Client::new();
    let first_ids = {
        let events = events_at(dir.path());
        let base = start(&events).await;
        let resp = client
            .get(format!("{base}/events/stream"))
            .bearer_auth("sw-read")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let id = open_manhole(&events, now_ns());
        events
            .transition(id, &tokens().0["sw-write"], &ack(), now_ns())
            .unwrap();
        let got = read_sse(resp, 2).await;
        assert_eq!(got[0].1["status"], "open");
        assert_eq!(got[1].1["status"], "acknowledged");
        assert!(got[0].0 < got[1].0);
        got
    };
    // "Restart": a new store handle on the same file, a new server. Changes happen while the
    // consumer is away; it resumes from the first id it saw and gets everything after it once.
    let events = events_at(dir.path());
    let base = start(&events).await;
    let id = first_ids[0].1["id"].as_i64().unwrap();
    let dispatch = wangge_events::store::TransitionRequest {
        action: wangge_events::lifecycle::Action::Dispatch,
        department: Some("sw".into()),
        note: None,
    };
    events
        .transition(id, &tokens().0["sw-write"], &dispatch, now_ns())
        .unwrap();
    let resp = client
        .get(format!("{base}/events/stream"))
        .bearer_auth("sw-read")
        .header("Last-Event-ID", first_ids[0].0.to_string())
        .send()
        .await
        .unwrap();
    let got = read_sse(resp, 2).await;
    assert_eq!(got[0].0, first_ids[1].0);
    assert_eq!(got[0].1["version"], 2);
    assert_eq!(got[1].1["status"], "dispatched");
    assert_eq!(got[1].1["version"], 3);
    // A department that does not see the event gets nothing of it (the smoke detector's event comes through).
    let resp = client
        .get(format!("{base}/events/stream"))
        .bearer_auth("xf-write")
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
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

fn ack() -> wangge_events::store::TransitionRequest {
    wangge_events::store::TransitionRequest {
        action: wangge_events::lifecycle::Action::Acknowledge,
        department: None,
        note: None,
    }
}

#[tokio::test]
async fn subscriptions_belong_to_their_department_and_lists_page_with_next() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_at(dir.path());
    let base = start(&events).await;
    let client = reqwest::Client::new();
    let (code, sub) = post(
        &client,
        &format!("{base}/subscriptions"),
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
    let (_, list) = get(&client, &format!("{base}/subscriptions"), "xf-write").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_eq!(
        get(
            &client,
            &format!("{base}/subscriptions/{sid}/deliveries"),
            "xf-write"
        )
        .await
        .0,
        403
    );
    let del = client
        .delete(format!("{base}/subscriptions/{sid}"))
        .bearer_auth("xf-write")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 403);
    let (code, _) = post(
        &client,
        &format!("{base}/subscriptions"),
        "sw-write",
        json!({"url": "http://x/", "department": "xf"}),
    )
    .await;
    assert_eq!(code, 403, "cannot subscribe for another department");
    let (code, _) = post(
        &client,
        &format!("{base}/subscriptions"),
        "sw-read",
        json!({"url": "http://x/"}),
    )
    .await;
    assert_eq!(code, 403, "read-only");
    let (code, err) = post(
        &client,
        &format!("{base}/subscriptions"),
        "sw-write",
        json!({"url": "ftp://x"}),
    )
    .await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (_, audit) = get(&client, &format!("{base}/audit"), "admin-token").await;
    assert!(audit["items"].as_array().unwrap().len() >= 3);
    // The owner lists and deletes it.
    let (_, list) = get(&client, &format!("{base}/subscriptions"), "sw-read").await;
    assert_eq!(list["items"][0]["id"], sid);
    assert!(
        list["items"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    let del = client
        .delete(format!("{base}/subscriptions/{sid}"))
        .bearer_auth("sw-write")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);

    // Paging: 3 events, pages of 2.
    for ts in 1..=3 {
        let r = manhole_reading(protocol::Quantity::Battery, 10.0, ts * 1_000_000_000);
        events.ingest(&r, now_ns()).unwrap();
        let id = events.store().list(&Default::default()).unwrap()[0].id;
        for a in ["acknowledge", "dispatch", "start", "resolve", "close"] {
            let (code, _) = post(
                &client,
                &format!("{base}/events/{id}/transitions"),
                "admin-token",
                json!({"action": a, "department": "sw"}),
            )
            .await;
            assert_eq!(code, 200);
        }
        let clear = RuleInput {
            value: 90.0,
            ts_ns: ts * 1_000_000_000 + 500_000_000,
            ..r
        };
        events.ingest(&clear, now_ns()).unwrap();
    }
    let (_, page1) = get(
        &client,
        &format!("{base}/events?limit=2&type=device.battery_low"),
        "sw-read",
    )
    .await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_str().unwrap().to_string();
    let (_, page2) = get(
        &client,
        &format!("{base}/events?limit=2&type=device.battery_low&cursor={next}"),
        "sw-read",
    )
    .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    let (code, err) = get(&client, &format!("{base}/events?colour=red"), "sw-read").await;
    assert_eq!(code, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("colour"));
}
