//! The evaluation page in a real browser: headless Debian Chromium over WebDriver against the
//! real `hub` binary, fed a morning of readings through its embedded broker by a client acting
//! as the seed's edge.
//!
//! The story: a centre director opens 综合评价. Seventeen sensors reported on schedule since they
//! were registered two hours ago, three went silent half-way; the page ranks the components by
//! data completeness with their names, the ones on schedule near 100 %, the chart's axes
//! labelled in the chosen language; a click on a name lists the events behind it. The page is
//! saved in both languages as `target/screenshots/evaluation-zh.png` and `evaluation-en.png`.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps installs them).

use fantoccini::{Client, Locator};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::path::Path;
use wangge_testkit::browser::{browser, click_shown, find, require_chromium, shot, sign_in, texts};
use wangge_testkit::now_ns;
use wangge_tests::seeded_hub::SeededHub;

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
    shot(c, shot_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_director_sees_completeness_near_100_percent_with_names_in_both_languages() {
    let (chromium_bin, driver_bin) = require_chromium();
    let mut hub = SeededHub::prepare(None);
    registered_two_hours_ago(&hub.data());
    hub.start();
    hub.send_as_edge(readings(), None).await;
    let admin = hub.admin.clone();
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
    let _ = c.close().await;
    drop(hub);
}
