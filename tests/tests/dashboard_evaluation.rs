//! The evaluation page in a real browser: headless Debian Chromium over WebDriver against the
//! real `hub` binary, fed a morning of readings through its embedded broker by a client acting
//! as the seed's edge.
//!
//! The story: a centre director opens 综合评价. Seventeen sensors reported on schedule since they
//! were registered two hours ago, three went silent half-way; the page ranks the components by
//! data completeness with their names, the ones on schedule near 100 %, the chart's axes
//! labelled in the chosen language; a click on a name lists the events behind it. The page is
//! saved in both languages as `target/screenshots/evaluation-zh.png` and `evaluation-en.png`.
//! The ranked table pages on (‹ ›) past its first rows. Then the water department announces
//! the outage of the edge over the time the three went silent (`POST edges/{id}/outages`; the
//! city management bureau (cg), which maintains nothing on it, gets 404): the report scores them ≈ 100 % and
//! the page lists the outage.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps installs them).

use fantoccini::{Client, Locator};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use wangge_testkit::browser::{browser, click_shown, find, require_chromium, shot, sign_in, texts};
use wangge_testkit::now_ns;
use wangge_tests::seeded_hub::{SeededHub, SEED_EDGE as EDGE, WAIT};

const S: i64 = 1_000_000_000;
/// The component of the first sensor (MH-0001), whose cover is knocked over.
const COVER: &str = "1201110101000001";
/// Seeded sensors that report (every 60 s, their registered interval); the last three only for
/// the first half of the time.
const REPORTING: usize = 20;
const HALF_SILENT: usize = 3;
const MINUTES: i64 = 100;
/// Rows a ranked table shows (`ROWS_SHOWN_MAX` in views/evaluation.js).
const ROWS_SHOWN: usize = 15;

/// Registered two hours ago: the seed was imported just now, so its registration times are
/// set back as if the sensors had been installed this morning.
fn registered_two_hours_ago(data: &Path) {
    let registry =
        hub::registry::SqliteRegistry::open(&data.join("registry.sqlite")).expect("registry");
    let at = now_ns() - 2 * 3600 * S;
    let sensors = registry.coverage_sensors().expect("sensors");
    assert!(
        sensors.len() >= REPORTING,
        "{} sensors in the seed",
        sensors.len()
    );
    for s in sensors {
        assert!(registry
            .set_registered_at(&s.sensor_id, at)
            .expect("set registration"));
    }
}

/// The seed's first sensors' ids (`MH-0001` …).
fn sensor(i: usize) -> String {
    format!("MH-{:04}", i + 1)
}

fn readings() -> Vec<Reading> {
    let start = now_ns() - MINUTES * 60 * S;
    let mut out = Vec::new();
    for i in 0..REPORTING {
        let minutes = if i >= REPORTING - HALF_SILENT {
            MINUTES / 2
        } else {
            MINUTES
        };
        for m in 0..minutes {
            out.push(Reading {
                sensor: sensor(i).as_str().into(),
                quantity: Quantity::Tilt,
                value: Value::Float(1.0),
                ts_ns: start + m * 60 * S,
                quality: Quality::Good,
                flags: ReadingFlags::default(),
            });
        }
    }
    // The first cover knocked over in the last half minute (tilt 25° for 20 s): the
    // catalogue's manhole.displaced rule raises a case, so the departments have a figure.
    let now = now_ns();
    for k in 0..20 {
        out.push(Reading {
            sensor: sensor(0).as_str().into(),
            quantity: Quantity::Tilt,
            value: Value::Float(25.0),
            ts_ns: now - (30 - k) * S,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        });
    }
    out
}

/// (name, completeness) of each row of the components table.
async fn ranked_components(c: &Client) -> Vec<(String, String)> {
    let rows = c
        .find_all(Locator::Css("#eval-components-table tbody tr"))
        .await
        .expect("rows");
    let mut out = Vec::new();
    for r in rows {
        let cells = r.find_all(Locator::Css("td")).await.expect("cells");
        let name = cells[1].text().await.expect("name");
        let completeness = cells
            .last()
            .expect("a last cell")
            .text()
            .await
            .expect("text");
        out.push((name, completeness));
    }
    out
}

fn percent(text: &str) -> Option<f64> {
    text.trim().trim_end_matches('%').trim().parse().ok()
}

/// The pager shows the rest of the reporting components (all on schedule), then pages back.
async fn pages_on_to_the_rest(c: &Client, shown: usize) {
    find(c, "#eval-components-table-pager .eval-next", "the pager")
        .await
        .click()
        .await
        .expect("next page");
    let deadline = Instant::now() + WAIT;
    let rest = loop {
        let rows = ranked_components(c).await;
        if rows.len() == REPORTING - shown {
            break rows;
        }
        assert!(Instant::now() < deadline, "page 2: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        rest.iter()
            .all(|(_, p)| percent(p).is_some_and(|p| p >= 95.0)),
        "{rest:?}"
    );
    let at = find(
        c,
        "#eval-components-table-pager .eval-pager-at",
        "the rows shown",
    )
    .await
    .text()
    .await
    .expect("text");
    assert!(at.contains(&REPORTING.to_string()), "{at}");
    find(c, "#eval-components-table-pager .eval-prev", "back")
        .await
        .click()
        .await
        .expect("previous page");
}

/// Completeness per sensor id in the report over the last two hours.
async fn sensor_completeness(base: &str, token: &str) -> serde_json::Value {
    let from = (now_ns() - 2 * 3600 * S) / 1_000_000;
    reqwest::Client::new()
        .get(format!("{base}/api/v1/reports/evaluation?from={from}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("hub answers")
        .json()
        .await
        .expect("JSON")
}

/// The half-silent sensors' rows of `report`'s sensors table.
fn half_silent_rows(report: &serde_json::Value) -> Vec<serde_json::Value> {
    let ids: Vec<String> = (REPORTING - HALF_SILENT..REPORTING).map(sensor).collect();
    let rows: Vec<serde_json::Value> = report["sensors"]
        .as_array()
        .expect("sensors")
        .iter()
        .filter(|r| ids.iter().any(|id| r["sensor_id"] == id.as_str()))
        .cloned()
        .collect();
    assert_eq!(rows.len(), HALF_SILENT, "{}", report["totals"]);
    rows
}

/// sw announces the outage of the edge over the half-silent sensors' silence: they score
/// ≈ 100 %; cg (no component of its on the edge) gets 404.
async fn an_announced_outage_excuses_the_silence(base: &str, admin: &str, sw: &str, cg: &str) {
    let before = sensor_completeness(base, admin).await;
    let rows = half_silent_rows(&before);
    for r in &rows {
        let p = r["completeness"].as_f64().unwrap_or(0.0);
        assert!((0.45..=0.55).contains(&p), "unannounced: {r}");
    }
    let start = rows[0]["monitored_from"].as_str().expect("monitored");
    let start_ms = protocol::time::parse_ts_ns(start).expect("RFC 3339") / 1_000_000;
    let body = serde_json::json!({
        "from": (start_ms + MINUTES / 2 * 60_000).to_string(),
        "until": (now_ns() / 1_000_000 + 60_000).to_string(),
        "reason": "网关更换",
    });
    let url = format!("{base}/api/v1/edges/{EDGE}/outages");
    let http = reqwest::Client::new();
    let post = |token: &str| http.post(&url).bearer_auth(token).json(&body).send();
    assert_eq!(post(cg).await.expect("hub answers").status(), 404);
    let r = post(sw).await.expect("hub answers");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let after = sensor_completeness(base, admin).await;
    for r in half_silent_rows(&after) {
        let p = r["completeness"].as_f64().unwrap_or(0.0);
        assert!(p >= 0.98, "announced: {r}");
        assert_eq!(r["outage_periods"], 1, "{r}");
    }
    let shown = &after["exclusions"]["announced_outages"];
    assert_eq!(shown[0]["edge_id"], EDGE, "{shown}");
}

/// Opens the page, checks what it must show in this language, and saves it.
async fn the_page_shows_completeness_with_names(
    c: &Client,
    base: &str,
    axis: &str,
    shot_name: &str,
) {
    c.goto(&format!("{base}/#/evaluation"))
        .await
        .expect("navigate");
    find(c, "#eval-components-table", "the ranked components").await;
    let rows = ranked_components(c).await;
    // The page shows the first ROWS_SHOWN rows of the ranking (the downloads hold all).
    assert_eq!(rows.len(), ROWS_SHOWN.min(REPORTING), "{rows:?}");
    pages_on_to_the_rest(c, rows.len()).await;
    let on_schedule: Vec<&(String, String)> = rows
        .iter()
        .filter(|(_, p)| percent(p).is_some_and(|p| p >= 95.0))
        .collect();
    assert_eq!(on_schedule.len(), rows.len() - HALF_SILENT, "{rows:?}");
    // Named, not a bare 16-digit code.
    for (name, _) in &on_schedule {
        assert!(
            !name.is_empty() && !name.chars().all(|ch| ch.is_ascii_digit()),
            "{name:?}"
        );
    }
    // Worst first: the half-silent ones lead, near 50 %.
    for (name, p) in rows.iter().take(HALF_SILENT) {
        let p = percent(p).unwrap_or(0.0);
        assert!((45.0..=55.0).contains(&p), "{name}: {p}");
    }
    find(c, "#eval-departments-table", "the departments' figures").await;
    let titles = texts(c, "#eval-components svg.eval-chart text.axis").await;
    assert!(titles.iter().any(|t| t == axis), "{titles:?}");
    // From the top, summary first, in either language (the switch keeps the scroll position).
    c.execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll to the top");
    shot(c, shot_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_director_sees_completeness_near_100_percent_with_names_in_both_languages() {
    let (chromium_bin, driver_bin) = require_chromium();
    let mut hub = SeededHub::prepare(None);
    let cg = hub.cli(&["token", "add", "--scope", "write", "--department", "cg"]);
    registered_two_hours_ago(&hub.data());
    hub.start();
    hub.send_as_edge(readings(), None).await;
    let (admin, sw) = (hub.admin.clone(), hub.sw.clone());
    let base = hub.serve().base();
    // The case is raised by the rules thread shortly after the readings are stored.
    hub.raised_event(COVER, "manhole.displaced").await;

    let (_group, c) = browser(&driver_bin, &chromium_bin, hub.dir(), "1400,2400").await;
    sign_in(&c, &base, &admin).await;

    the_page_shows_completeness_with_names(&c, &base, "数据完整率（%）", "evaluation-zh").await;
    // The export buttons are there for every section, and the drill-down lists the events
    // behind a component (none here: it reported on schedule).
    find(&c, "#eval-components .eval-csv", "the CSV button").await;
    find(&c, "#eval-xlsx", "the XLSX button").await;
    click_shown(
        &c,
        "#eval-components-table a.eval-drill-link",
        "a component's drill-down",
    )
    .await;
    find(&c, "#eval-drill h2", "the events behind the component").await;

    click_shown(&c, "header button[data-lang=\"en\"]", "the English button").await;
    the_page_shows_completeness_with_names(&c, &base, "Data completeness (%)", "evaluation-en")
        .await;
    an_announced_outage_excuses_the_silence(&base, &admin, &sw, &cg).await;
    c.refresh().await.expect("reload");
    find(&c, "#eval-outages li", "the announced outage on the page").await;
    let _ = c.close().await;
    drop(hub);
}
