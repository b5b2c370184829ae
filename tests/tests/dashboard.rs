//! The dashboard in a real browser: headless Debian Chromium driven over WebDriver
//! (chromedriver + fantoccini) against the real `hub` binary, fed real readings through its
//! embedded MQTT broker by a client acting as the seed's edge.
//!
//! The story: a facility manager signs in, sees the overview and the map, opens the manhole
//! cover that is in alarm, sees its tilt chart, acknowledges its event and dispatches it to
//! 城管, and sees the status change; a 消防 (fire brigade) token does not see that event.
//! Each page is saved to `target/screenshots/` for a person to look at.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps installs them).

use fantoccini::{Client, Locator};
use protocol::uplink::{EdgeStatus, Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use rumqttc::{Event, Packet};
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};
use wangge_testkit::browser::{
    act_on_event, browser, event_shows, find, require_chromium, shot, sign_in,
};
use wangge_testkit::now_ns;
use wangge_tests::seeded_hub::{next_event, SeededHub, SEED_EDGE, WAIT};

/// The seed's water-supply manhole cover on MH-0001, owned by 水务 (sw), in grid 120111001001.
const COMPONENT: &str = "1201110101000001";
const SENSOR: &str = "MH-0001";
const EDGE: &str = SEED_EDGE;
/// The version the test's edge reports in its status.
const EDGE_VERSION: &str = "0.1.0-dashboard-test";

/// The edge's status as the edges page shows it: version and the backlog still to send.
/// Freshness: each status must be newer than the last for the hub to take it, so `counter`
/// is the clock.
fn edge_status(epoch: u64, backlog_readings: u64, backlog_bytes: u64) -> EdgeStatus {
    EdgeStatus {
        edge_id: EDGE.into(),
        online: true,
        version: EDGE_VERSION.to_string(),
        epoch,
        counter: now_ns() as u64,
        will_counter: 0,
        backlog_readings,
        backlog_bytes,
        oldest_unacked_ns: None,
        ts_ns: now_ns(),
        sources_down: Vec::new(),
    }
}

/// Reports the edge's status (version, backlog) as the edge would, waiting for the broker's
/// PubAck.
async fn publish_status(hub: &SeededHub, backlog_readings: u64) {
    let (client, mut el) = hub.edge_client(10);
    let status = edge_status(1, backlog_readings, backlog_readings * 80);
    hub.queue_status(&client, &status).await;
    loop {
        match next_event(&mut el).await {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("status connection failed: {e}"),
        }
    }
    let _ = client.disconnect().await;
}

/// 30 minutes of a manhole cover: level, then knocked over in the last 3 minutes (tilt 25°,
/// opened), which the catalogue's `manhole.displaced` rule (tilt > 15° for 10 s) raises as
/// critical.
fn displaced_cover_readings() -> Vec<Reading> {
    let now_ns = now_ns();
    let step_ns = 5_000_000_000i64;
    let n = 360;
    let mut out = Vec::new();
    for i in 0..n {
        let ts_ns = now_ns - (n - i) * step_ns;
        let knocked = i >= n - 36;
        let r = |quantity, value| Reading {
            sensor: SENSOR.into(),
            quantity,
            value,
            ts_ns,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        };
        let wobble = ((i % 7) as f64) * 0.3;
        out.push(r(
            Quantity::Tilt,
            Value::Float(if knocked { 25.0 + wobble } else { 1.0 + wobble }),
        ));
        out.push(r(Quantity::Battery, Value::Float(87.0 - i as f64 * 0.01)));
        out.push(r(Quantity::Opened, Value::Bool(knocked)));
        out.push(r(
            Quantity::WaterLevel,
            Value::Float(12.0 + (i as f64 / 30.0).sin() * 3.0),
        ));
    }
    out
}

/// The element `css` matches now (it is expected to be on the page already).
async fn present(c: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what} ({css}): {e}"))
}

/// Clicks the element `css` matches now (it is expected to be on the page already).
async fn click(c: &Client, css: &str, what: &str) {
    present(c, css, what)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {what}: {e}"));
}

/// Waits for each `(css, what)` in turn: the things a page must show.
async fn find_each(c: &Client, expected: &[(&str, &str)]) {
    for (css, what) in expected {
        find(c, css, what).await;
    }
}

/// Waits for `css` and returns its text.
async fn text_of(c: &Client, css: &str, what: &str) -> String {
    find(c, css, what).await.text().await.expect("text")
}

/// Navigates to the dashboard's page `hash` and waits for `css`, the sign that it is shown.
async fn open(
    c: &Client,
    hub: &SeededHub,
    hash: &str,
    css: &str,
    what: &str,
) -> fantoccini::elements::Element {
    c.goto(&hub.url(&format!("/{hash}")))
        .await
        .expect("navigate");
    find(c, css, what).await
}

/// Switches the interface to `lang` with the header's button; the navigation then reads
/// `overview` for the overview page.
async fn switch_language(c: &Client, lang: &str, overview: &str) {
    click(
        c,
        &format!("header button[data-lang=\"{lang}\"]"),
        &format!("the {lang} button"),
    )
    .await;
    assert_eq!(
        text_of(c, "#nav-overview", "the navigation").await,
        overview
    );
}

/// The ids of the events `token` is shown by `GET /api/v1/events`, with the body for messages.
async fn visible_event_ids(hub: &SeededHub, token: &str) -> (Vec<i64>, Json) {
    let (_, v) = hub.get(token, "events").await;
    let ids = v["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect())
        .unwrap_or_default();
    (ids, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_acts_on_an_alarm_in_the_dashboard_and_another_department_does_not_see_it() {
    let (chromium_bin, driver_bin) = require_chromium();
    let hub = SeededHub::started(None);
    hub.send_as_edge(
        displaced_cover_readings(),
        Some(&edge_status(1, 1200, 96 * 1024)),
    )
    .await;

    // The events engine raises manhole.displaced from these readings.
    let id = hub.raised_event(COMPONENT, "manhole.displaced").await;
    // The event puts its component in alarm (the registry status follows the events).
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, comp) = hub
            .get(&hub.admin, &format!("components/{COMPONENT}"))
            .await;
        if comp["status"] == "alarm" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "event {id} raised but component {COMPONENT} is not in alarm: {comp}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let (mut driver, c) = browser(&driver_bin, &chromium_bin, dir.path(), "1400,1000").await;
    c.set_window_size(1400, 1000).await.expect("window size");

    // A wrong token is refused on the sign-in page itself.
    open(&c, &hub, "", "#token", "the sign-in form")
        .await
        .send_keys("wgt_nope.nope")
        .await
        .expect("type");
    click(&c, "#signin-submit", "the submit button").await;
    find(&c, "#app .signin .error", "the refusal of a bad token").await;
    shot(&c, "signin").await;

    // Overview: counts and open events.
    sign_in(&c, &hub.url("/"), &hub.admin).await;
    let open_row = format!("#open-events tr[data-event=\"{id}\"]");
    find_each(
        &c,
        &[
            ("#component-counts .card.alarm", "component counts"),
            (&open_row, "the open event on the overview"),
        ],
    )
    .await;
    shot(&c, "overview").await;

    // Map: the alarm component is drawn and clickable.
    let dot_css = format!("svg.map circle[data-component=\"{COMPONENT}\"][data-status=\"alarm\"]");
    open(&c, &hub, "#/map", &dot_css, "the alarm on the map").await;
    shot(&c, "map").await;
    // A live update may redraw the map between finding the dot and clicking it: find again.
    let deadline = Instant::now() + WAIT;
    loop {
        let dot = find(&c, &dot_css, "the alarm on the map").await;
        if dot.click().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "could not click the alarm on the map"
        );
    }

    // Component page: details, latest values and the tilt chart drawn by uPlot.
    let tilt_chart = ".chart[data-quantity=\"tilt\"] canvas";
    find_each(
        &c,
        &[
            ("#view-component #details", "the component page"),
            (tilt_chart, "the tilt chart"),
        ],
    )
    .await;
    let latest_tilt = "#latest .value[data-quantity=\"tilt\"] .v";
    let latest_text = text_of(&c, latest_tilt, "the latest tilt").await;
    assert!(
        latest_text.contains('°'),
        "latest tilt shows {latest_text:?}"
    );
    shot(&c, "component").await;
    click(
        &c,
        "#range button[data-range=\"range.7d\"]",
        "the 7 d button",
    )
    .await;
    find_each(
        &c,
        &[
            ("#range button.on[data-range=\"range.7d\"]", "the 7 d range"),
            (tilt_chart, "the 7 d tilt chart"),
        ],
    )
    .await;

    // The component page lists its event; from there the manager opens it and acts.
    let component_event = format!("#component-events [data-event=\"{id}\"]");
    find(&c, &component_event, "the component's event").await;
    let event_page = format!("#/events/{id}");
    let open_event = "#event-detail [data-status=\"open\"]";
    open(&c, &hub, &event_page, open_event, "the open event").await;
    act_on_event(&c, "acknowledge", None, Some("已到现场核实")).await;
    event_shows(&c, "acknowledged", "the acknowledged status").await;
    act_on_event(&c, "dispatch", Some("cg"), Some("请城管处置")).await;
    event_shows(&c, "dispatched", "the dispatched status").await;
    find(
        &c,
        &format!("#event-list tr[data-event=\"{id}\"][data-status=\"dispatched\"]"),
        "the list's new status",
    )
    .await;
    // Live updates: another actor starts the work through the API; the open page follows
    // over SSE without being reloaded.
    find(&c, "#live.up", "the live (SSE) connection").await;
    let resp = reqwest::Client::new()
        .post(hub.url(&format!("/api/v1/events/{id}/transitions")))
        .bearer_auth(&hub.admin)
        .json(&json!({"action": "start", "note": "现场处置中"}))
        .send()
        .await
        .expect("hub answers");
    assert!(resp.status().is_success(), "start: {}", resp.status());
    event_shows(&c, "in_progress", "the live in_progress status").await;
    // An action the state does not allow shows the hub's 409 message.
    act_on_event(&c, "close", None, Some("")).await;
    let refusal = "the refusal of a disallowed action";
    let text = text_of(&c, "#act-message.error", refusal).await;
    assert!(!text.is_empty(), "409 message shown");
    shot(&c, "events").await;
    let (_, v) = hub.get(&hub.admin, &format!("events/{id}")).await;
    assert_eq!(v["status"], "in_progress", "{v}");
    assert_eq!(v["department"], "cg", "{v}");

    let edge_row = format!("#edges tr[data-edge=\"{EDGE}\"]");
    open(&c, &hub, "#/edges", &edge_row, "the edge row").await;
    // The status the edge reported (version, backlog) reaches the page; the page refreshes
    // itself every 10 s, so wait up to WAIT.
    let deadline = Instant::now() + WAIT;
    loop {
        let row = find(&c, &edge_row, "the edge row").await;
        let text = row.text().await.unwrap_or_default();
        if text.contains(EDGE_VERSION) && text.contains("1200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge row without the reported status: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The backlog shrinks: the page estimates when it will be drained from the rate it saw.
    publish_status(&hub, 600).await;
    find(
        &c,
        &format!("{edge_row} td[data-drain=\"estimate\"]"),
        "the drain estimate",
    )
    .await;
    shot(&c, "edges").await;

    let evaluation = "#view-evaluation .panel, #view-evaluation .error, #view-evaluation .muted";
    open(&c, &hub, "#/evaluation", evaluation, "the evaluation page").await;
    shot(&c, "evaluation").await;

    // The interface switches to English and back.
    switch_language(&c, "en", "Overview").await;
    shot(&c, "evaluation-en").await;
    switch_language(&c, "zh", "总览").await;

    // Scope: the fire brigade's token does not see the water authority's manhole event; the
    // owner (水务) does.
    let (ids, v) = visible_event_ids(&hub, &hub.xf).await;
    assert!(!ids.contains(&id), "xf sees event {id}: {v}");
    let (ids, v) = visible_event_ids(&hub, &hub.sw).await;
    assert!(ids.contains(&id), "sw (owner) does not see event {id}: {v}");

    click(&c, "#signout", "sign out").await;
    sign_in(&c, &hub.url("/"), &hub.xf).await;
    open(&c, &hub, "#/events", "#event-list h2", "the xf events list").await;
    assert!(
        c.find(Locator::Css(&format!(
            "#event-list tr[data-event=\"{id}\"]"
        )))
        .await
        .is_err(),
        "the xf token's events page lists event {id}"
    );
    shot(&c, "events-department-xf").await;
    let refusal = "the refusal of another department's event";
    open(&c, &hub, &event_page, "#event-detail .error", refusal).await;

    let _ = c.close().await;
    driver.terminate(Duration::from_secs(5));
}
