//! Delivery of configuration from the hub, with a real `hub serve` (embedded broker behind the
//! gate) and MQTT clients logged in as edges: the edge gets its newest version retained and
//! sealed under its own key, another edge is refused the subscription, a sealed report is
//! stored, forged / foreign / replayed ones are counted and ignored, and a version set with
//! the CLI while the hub runs is delivered by the periodic pass.

mod edge_config_support;
mod hub_cli_support;

use edge_config_support::{edge_client, next_config, Seen, WAIT};
use hub_cli_support::{hub_cli, serve};
use protocol::edge_config::{document_hash, ConfigOutcome, ConfigReport};
use protocol::uplink::{mac_key, topics, EdgeId};
use rumqttc::{QoS, SubscribeReasonCode};
use serde_json::{json, Value as Json};
use wangge_testkit::http::{http_get, metric_sum};
use wangge_testkit::{eventually, eventually_some, now_ns};

const ADMIN: &str = "edge-config-delivery-admin-5e0b7c93a14f2d68";
const EDGE: &str = "edge-xq-01";
const OTHER: &str = "edge-other-01";

/// `GET url` as the admin, its JSON body.
async fn config_of(http: &reqwest::Client, url: &str) -> Option<Json> {
    let resp = http.get(url).bearer_auth(ADMIN).send().await.ok()?;
    resp.json().await.ok()
}

fn report(version: u64, ts_ns: i64) -> ConfigReport {
    ConfigReport {
        edge_id: EdgeId(EDGE.into()),
        applied_version: version,
        applied_hash: document_hash("[uplink]\nbatch_age_ms = 100\n"),
        version,
        outcome: ConfigOutcome::Applied,
        error: None,
        ts_ns,
    }
}

#[tokio::test]
async fn an_edge_gets_its_sealed_config_retained_and_its_sealed_reports_alone_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    hub_cli(
        &data,
        &[
            "registry",
            "import",
            wangge_testkit::paths::seed_dir().to_str().unwrap(),
        ],
    );
    let secret = hub_cli(&data, &["edge", "add", EDGE]);
    let other_secret = hub_cli(&data, &["edge", "add", OTHER]);
    let hub = serve(dir.path(), "hub.log", ADMIN)
        .data_dir(&data)
        .start()
        .unwrap();
    let key = mac_key(&secret);

    let doc = "[uplink]\nbatch_age_ms = 100\n";
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/edges/{EDGE}/config", hub.base());
    let put = http
        .put(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"document": doc}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), reqwest::StatusCode::CREATED);
    let (first, mut seen) = edge_client(hub.mqtt, EDGE, &secret, &topics::config(EDGE)).await;
    let (c, _) = next_config(&mut seen, EDGE, &key).await;
    assert_eq!((c.version, c.document.as_str()), (1, doc));
    // The broker holds it now: an edge (re)connecting later is handed the retained copy first.
    first.disconnect().await.unwrap();
    drop(seen);
    let (edge, mut seen) = edge_client(hub.mqtt, EDGE, &secret, &topics::config(EDGE)).await;
    let (c, retained) = next_config(&mut seen, EDGE, &key).await;
    assert_eq!(
        (c.version, retained),
        (1, true),
        "the copy on subscribing is the retained one"
    );

    // Another edge may not read it.
    let (_spy, mut spied) =
        edge_client(hub.mqtt, OTHER, &other_secret, &topics::config(EDGE)).await;
    match tokio::time::timeout(WAIT, spied.recv())
        .await
        .expect("a SUBACK")
    {
        Some(Seen::SubAck(codes)) => assert_eq!(codes, vec![SubscribeReasonCode::Failure]),
        _ => panic!("the other edge got something else than a refused SUBACK"),
    }

    // A sealed report is stored: the hub shows the version applied and in sync.
    let sealed = report(1, now_ns()).seal(&key);
    edge.publish(
        topics::config_report(EDGE),
        QoS::AtLeastOnce,
        false,
        sealed.clone(),
    )
    .await
    .unwrap();
    let state: Json = eventually_some("the report stored", WAIT, || async {
        config_of(&http, &url)
            .await
            .filter(|s| s["in_sync"] == true)
    })
    .await;
    assert_eq!(state["applied"]["applied_version"], 1);
    assert_eq!(state["applied"]["outcome"], "applied");

    // A replay, a report sealed under another key and one naming another edge: all ignored.
    let mut foreign = report(9, now_ns() + 1);
    foreign.edge_id = EdgeId(OTHER.into());
    for payload in [
        sealed,
        report(9, now_ns() + 2).seal(&mac_key("not-the-secret")),
        foreign.seal(&key),
    ] {
        edge.publish(
            topics::config_report(EDGE),
            QoS::AtLeastOnce,
            false,
            payload,
        )
        .await
        .unwrap();
    }
    let count = |outcome: &str| {
        let text = http_get(hub.http, "/metrics").unwrap_or_default();
        metric_sum(
            &text,
            "wangge_config_reports_total",
            &[("outcome", outcome)],
        )
    };
    eventually("the three ignored reports counted", WAIT, || {
        count("replayed") == 1.0 && count("bad_mac") == 1.0 && count("foreign") == 1.0
    })
    .await;
    assert_eq!(count("applied"), 1.0);
    let after = config_of(&http, &url).await.expect("GET config");
    assert_eq!(
        after["applied"], state["applied"],
        "an ignored report changed the stored one"
    );

    // A version set with the CLI while the hub runs reaches the edge through the periodic pass.
    let file = dir.path().join("v2.toml");
    std::fs::write(&file, "[uplink]\nbatch_age_ms = 300\n").unwrap();
    hub_cli(
        &data,
        &["edge", "config", "set", EDGE, file.to_str().unwrap()],
    );
    let v2 = loop {
        let (c, _) = next_config(&mut seen, EDGE, &key).await;
        if c.version == 2 {
            break c;
        }
    };
    assert_eq!(v2.document, "[uplink]\nbatch_age_ms = 300\n");
    assert!(
        !hub.log().contains("batch_age_ms"),
        "the document was logged"
    );
}
