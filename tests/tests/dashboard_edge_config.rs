//! Configuration from the hub on the dashboard's edges page, in a real browser (headless
//! Chromium over WebDriver) against the real `hub` binary: a version set with the CLI shows as
//! pending, the edge's sealed report (published through the embedded broker by a client acting
//! as the edge) turns it in sync, and a refused next version shows with the edge's error.
//! The page is saved as `target/screenshots/edges-config.png`.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps installs them).

use fantoccini::Client;
use protocol::edge_config::{document_hash, ConfigOutcome, ConfigReport};
use protocol::uplink::{mac_key, topics, EdgeId};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::time::Duration;
use wangge_testkit::browser::{browser, chromium, find, shot};
use wangge_testkit::hub::HubServe;
use wangge_testkit::{bin, now_ns, workspace_root};

const EDGE: &str = "edge-xq-01";
const V1: &str = "[uplink]\nbatch_age_ms = 100\n";

fn hub_cli(data: &Path, args: &[&str]) -> String {
    wangge_testkit::hub::cli(&bin("hub"), data, args)
}

/// Sets `document` as the edge's next version with the CLI.
fn set_version(dir: &Path, document: &str) {
    let file = dir.join("edge-config.toml");
    std::fs::write(&file, document).expect("write the document");
    hub_cli(
        &dir.join("data"),
        &["edge", "config", "set", EDGE, file.to_str().unwrap()],
    );
}

/// The text of the edge's configuration cell once it contains `want` (the page refreshes every
/// 10 s; reloading is quicker).
async fn config_cell(c: &Client, base: &str, want: &str) -> String {
    let css = format!("#edges td[data-config=\"{EDGE}\"]");
    for _ in 0..60 {
        c.goto(&format!("{base}/#/edges")).await.expect("navigate");
        let text = find(c, &css, "the edge's config cell")
            .await
            .text()
            .await
            .unwrap_or_default();
        if text.contains(want) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the config cell never showed {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_page_shows_desired_against_applied_and_the_last_error() {
    let Some((chromium_bin, driver)) = chromium() else {
        eprintln!("skipped: chromium and chromedriver are not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let seed = workspace_root().join("config/registry");
    hub_cli(&data, &["registry", "import", seed.to_str().unwrap()]);
    let secret = hub_cli(&data, &["edge", "add", EDGE]);
    let admin = hub_cli(&data, &["token", "add", "--scope", "admin"]);
    set_version(dir.path(), V1);
    let hub = HubServe::config(&bin("hub"), &dir.path().join("hub.log"))
        .data_dir(&data)
        .start()
        .expect("hub serve");
    let base = hub.base();

    let (_driver, c) = browser(&driver, &chromium_bin, dir.path(), "1400,900").await;
    c.goto(&base).await.expect("open the dashboard");
    c.execute(
        "localStorage.setItem('wangge.token', arguments[0]);",
        vec![admin.clone().into()],
    )
    .await
    .expect("store the token");
    let pending = config_cell(&c, &base, "v1 / v—").await;
    assert!(pending.contains("未同步"), "{pending}");

    // The edge reports v1 applied, sealed under its key.
    let mut opts = MqttOptions::new(EDGE, "127.0.0.1", hub.mqtt);
    opts.set_credentials(EDGE, &secret);
    let (edge, mut el) = AsyncClient::new(opts, 10);
    tokio::spawn(async move {
        while let Ok(e) = el.poll().await {
            if let Event::Incoming(Packet::Disconnect) = e {
                return;
            }
        }
    });
    let key = mac_key(&secret);
    let report = |applied: u64, version: u64, outcome, error: Option<&str>, ts_ns| ConfigReport {
        edge_id: EdgeId(EDGE.into()),
        applied_version: applied,
        applied_hash: document_hash(V1),
        version,
        outcome,
        error: error.map(str::to_string),
        ts_ns,
    };
    let applied = report(1, 1, ConfigOutcome::Applied, None, now_ns()).seal(&key);
    edge.publish(
        topics::config_report(EDGE),
        QoS::AtLeastOnce,
        false,
        applied,
    )
    .await
    .expect("publish the report");
    let synced = config_cell(&c, &base, "v1 / v1").await;
    assert!(synced.contains("已同步"), "{synced}");

    // v2 is refused by the edge: the page names the version and the edge's error.
    set_version(dir.path(), "[validate]\nbogus = 1\n");
    let error = "validate.bogus: unknown field";
    let refused = report(1, 2, ConfigOutcome::Refused, Some(error), now_ns()).seal(&key);
    edge.publish(
        topics::config_report(EDGE),
        QoS::AtLeastOnce,
        false,
        refused,
    )
    .await
    .expect("publish the report");
    let shown = config_cell(&c, &base, error).await;
    assert!(
        shown.contains("v2 / v1") && shown.contains("v2 被拒绝"),
        "{shown}"
    );
    shot(&c, "edges-config").await;
}
