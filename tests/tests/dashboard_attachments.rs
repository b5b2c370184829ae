//! Evidence on the closed loop, end to end: the real `hub` binary (its embedded broker fed by
//! a client acting as the seed's edge), headless Chromium over WebDriver, and a hub restart.
//!
//! The story: a manhole cover is knocked over; the water department (水务, sw) works the case
//! and, on the event page, tries to resolve it without a photo — the hub's evidence rule
//! (返回处置后照片) refuses and the page says why; they upload the photo after repair, see its
//! thumbnail, and resolve with it. The fire brigade (消防, xf) cannot fetch the photo. The hub
//! is killed and started again: the photo, its hash and its place in the history are still
//! there; a deletion is audited and survives the next restart too. The page is saved as
//! `target/screenshots/event-attachment.png`.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps installs them).

use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wangge_testkit::browser::{
    act_on_event, browser, event_shows, find, require_chromium, shot, sign_in,
};
use wangge_testkit::{now_ns, workspace_root};
use wangge_tests::seeded_hub::{SeededHub, WAIT};

/// The seed's water-supply manhole cover on MH-0001, owned by 水务 (sw).
const COMPONENT: &str = "1201110101000001";
const SENSOR: &str = "MH-0001";
/// The evidence rule the hub is configured with; the refusal must name it.
const RULE: &str = "处置后照片";

fn photo_path() -> PathBuf {
    workspace_root().join("hub/events/tests/fixtures/after-repair.png")
}

/// What this story does on the hub besides the seeded hub's calls.
trait CaseWork {
    async fn act(&self, id: i64, body: Json);
    async fn photo(&self, token: &str, id: i64, att: i64) -> (u16, Vec<u8>);
}

impl CaseWork for SeededHub {
    async fn act(&self, id: i64, body: Json) {
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &self.sw,
                &format!("events/{id}/transitions"),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }

    /// The bytes of attachment `att` of event `id` as `token` gets them.
    async fn photo(&self, token: &str, id: i64, att: i64) -> (u16, Vec<u8>) {
        let resp = reqwest::Client::new()
            .get(self.url(&format!("/api/v1/events/{id}/attachments/{att}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("hub answers");
        (
            resp.status().as_u16(),
            resp.bytes().await.expect("body").to_vec(),
        )
    }
}

/// 30 minutes of the manhole cover, knocked over (tilt 25°, opened) in the last 3: the
/// catalogue's `manhole.displaced` rule raises it.
fn displaced_cover_readings() -> Vec<Reading> {
    let now = now_ns();
    let (step, n) = (5_000_000_000i64, 360);
    let mut out = Vec::new();
    for i in 0..n {
        let knocked = i >= n - 36;
        let r = |quantity, value| Reading {
            sensor: SENSOR.into(),
            quantity,
            value,
            ts_ns: now - (n - i) * step,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        };
        out.push(r(
            Quantity::Tilt,
            Value::Float(if knocked { 25.0 } else { 1.0 }),
        ));
        out.push(r(Quantity::Opened, Value::Bool(knocked)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_uploaded_on_the_event_page_resolves_the_case_and_survives_a_hub_restart() {
    let (chromium_bin, driver_bin) = require_chromium();
    let photo = std::fs::read(photo_path()).expect("fixture photo");
    let mut hub = SeededHub::started(Some(&format!(
        "[[events.attachments.require]]\nname = \"{RULE}\"\nevent_types = [\"manhole.*\"]\n"
    )));
    hub.send_as_edge(displaced_cover_readings(), None).await;
    let id = hub.raised_event(COMPONENT, "manhole.displaced").await;

    // The served OpenAPI document lists the attachment routes.
    let (_, doc) = hub.get(&hub.admin, "openapi.json").await;
    for (path, methods) in [
        ("/api/v1/events/{id}/attachments", &["get", "post"][..]),
        (
            "/api/v1/events/{id}/attachments/{att}",
            &["get", "delete"][..],
        ),
    ] {
        for m in methods {
            assert!(
                doc["paths"][path][m].is_object(),
                "openapi lacks {m} {path}"
            );
        }
    }

    hub.act(id, json!({"action": "acknowledge"})).await;
    hub.act(id, json!({"action": "dispatch", "department": "sw"}))
        .await;
    hub.act(id, json!({"action": "start"})).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (_driver, c) = browser(&driver_bin, &chromium_bin, dir.path(), "1400,1000").await;
    c.set_window_size(1400, 1000).await.expect("window size");
    sign_in(&c, &hub.url("/"), &hub.sw).await;
    c.goto(&hub.url(&format!("/#/events/{id}")))
        .await
        .expect("navigate");
    event_shows(&c, "in_progress", "the event in progress").await;
    find(&c, "#att-none", "no photos yet").await;

    // Resolve without a photo: the rule refuses, and the page names it.
    act_on_event(&c, "resolve", None, None).await;
    let refusal = find(&c, "#act-message.error", "the refusal")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        refusal.contains(RULE),
        "the refusal names the rule: {refusal:?}"
    );

    // Upload the photo after repair: its thumbnail appears, decoded by the browser.
    find(&c, "#att-file", "the upload control")
        .await
        .send_keys(photo_path().to_str().expect("utf-8 path"))
        .await
        .expect("choose file");
    find(
        &c,
        "#att-pending .att-chip",
        "the photo waiting for the next action",
    )
    .await;
    find(
        &c,
        "#att-gallery img.att-thumb[src^=\"blob:\"]",
        "the thumbnail",
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let w = c
            .execute(
                "return document.querySelector('#att-gallery img.att-thumb').naturalWidth",
                vec![],
            )
            .await
            .expect("script");
        if w == json!(480) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the thumbnail did not decode: naturalWidth {w}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    act_on_event(&c, "resolve", None, None).await;
    event_shows(&c, "resolved", "the resolved event").await;
    find(&c, "#att-gallery figure.att", "the photo after resolve").await;
    c.execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll");
    shot(&c, "event-attachment").await;

    // The photo as stored, referenced by the resolve; another department cannot fetch it.
    let (_, detail) = hub.get(&hub.sw, &format!("events/{id}")).await;
    let att = detail["attachments"][0]["id"]
        .as_i64()
        .expect("an attachment");
    let sha: String = Sha256::digest(&photo)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(detail["attachments"][0]["sha256"], sha);
    let resolve = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (resolve["action"].as_str(), &resolve["attachments"]),
        (Some("resolve"), &json!([att]))
    );
    assert_eq!(hub.photo(&hub.xf, id, att).await.0, 404);
    let _ = c.close().await;
    // The upload is counted on the hub's /metrics.
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .expect("hub answers")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("wangge_attachments_total{outcome=\"stored\"} 1"),
        "{metrics}"
    );

    // kill -9 and start again: the photo, its hash and its place in the history are kept.
    hub.restart();
    assert_eq!(hub.photo(&hub.sw, id, att).await, (200, photo.clone()));
    let (_, after) = hub.get(&hub.sw, &format!("events/{id}")).await;
    assert_eq!(after["history"], detail["history"]);
    assert_eq!(after["attachments"], detail["attachments"]);

    // A deletion is audited, shown in the history, and survives the next restart.
    let (status, deleted) = hub
        .call(
            reqwest::Method::DELETE,
            &hub.sw,
            &format!("events/{id}/attachments/{att}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    hub.restart();
    assert_eq!(hub.photo(&hub.sw, id, att).await.0, 404);
    let (_, after) = hub.get(&hub.sw, &format!("events/{id}")).await;
    let last = after["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "attachment.delete");
    assert!(last["note"].as_str().unwrap_or("").contains(&sha), "{last}");
    let (_, audit) = hub.get(&hub.admin, "audit").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "attachment.delete"
                && e["department"] == "sw"
                && e["reason"].as_str().unwrap_or("").contains(&sha)),
        "deletion audited: {audit}"
    );
}
