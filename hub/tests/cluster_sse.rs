//! Any member streams every change: an SSE client on one cluster member sees an event raised by
//! the member that owns the edge and a transition made through the other (outbox polling wakes
//! each member's streams on its peers' commits). Real `hub` binaries in cluster mode on one
//! PostgreSQL, mosquitto and VictoriaMetrics; a sealed batch from a fake edge raises the event.

mod hub_cli_support;
mod ingest_support;

use futures::StreamExt;
use hub_cli_support::{
    displaced_cover_tilt, get_json, hub_cli_config, member_config, seed_dir, serve_member,
};
use ingest_support::*;
use protocol::uplink::mac_key;
use std::path::PathBuf;
use std::time::Duration;
use wangge_testkit::hub::HubServe;
use wangge_testkit::{Mosquitto, Postgres, VictoriaMetrics};

const ADMIN: &str = "cluster-sse-admin-3e9d0a7c51b2f846";
const EDGE: &str = "edge-xq-01";

/// Reads SSE `data:` lines from `stream` until one satisfies `want` (30 s at most).
async fn next_matching(
    lines: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    if let Ok(j) = serde_json::from_str::<serde_json::Value>(data.trim()) {
                        if want(&j) {
                            return j;
                        }
                    }
                }
            }
            let chunk = lines.next().await.expect("stream open").expect("chunk");
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the change within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_member_carries_changes_committed_by_the_others() {
    let pg = Postgres::start();
    let url = pg.create_database("sse");
    let mosq = Mosquitto::start();
    let vm = VictoriaMetrics::start();
    let work = tempfile::tempdir().unwrap();
    let configs: Vec<PathBuf> = ["hub-a", "hub-b"]
        .iter()
        .map(|id| member_config(work.path(), id, &url, mosq.port, &vm.url(), true))
        .collect();
    let seed = seed_dir();
    hub_cli_config(
        &configs[0],
        &["registry", "import", seed.to_str().expect("utf-8 path")],
    );
    let secret = hub_cli_config(&configs[0], &["edge", "add", EDGE]);
    let members: Vec<HubServe> = configs
        .iter()
        .map(|c| serve_member(c, ADMIN, mosq.port))
        .collect();
    let http: Vec<u16> = members.iter().map(|m| m.http).collect();
    let client = reqwest::Client::new();
    // Which member owns the edge? The stream goes to the other one.
    let owner = loop {
        let s = get_json(http[0], "/api/v1/cluster", ADMIN).await;
        let found = s["members"].as_array().and_then(|ms| {
            ms.iter()
                .find(|m| {
                    m["edges"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == EDGE))
                })
                .map(|m| usize::from(m["hub_id"] == "hub-b"))
        });
        if let Some(o) = found {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let watcher = 1 - owner;
    let stream = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/events/stream",
            http[watcher]
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let mut body = stream.bytes_stream();
    let mut buf = String::new();

    // The owner raises manhole.displaced from the edge's batch (tilt 25° on MH-0001).
    let mut edge = login(mosq.port, EDGE, &secret).await;
    let (_, tilt) = displaced_cover_tilt();
    let b = batch(EDGE, 1, 1, tilt);
    edge.publish_until_acked(&[(&b, &mac_key(&secret))]).await;
    let raised = next_matching(&mut body, &mut buf, |j| j["type"] == "manhole.displaced").await;
    let id = raised["id"].as_i64().expect("event id");

    // A transition through the owner reaches the watcher's stream too.
    let r = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/events/{id}/transitions",
            http[owner]
        ))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"action": "acknowledge"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let acked = next_matching(&mut body, &mut buf, |j| {
        j["id"].as_i64() == Some(id) && j["status"] == "acknowledged"
    })
    .await;
    assert!(
        acked["version"].as_u64() > raised["version"].as_u64(),
        "{acked}"
    );
}
