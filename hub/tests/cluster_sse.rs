//! Any member streams every change: an SSE client on one cluster member sees an event raised by
//! the member that owns the edge and a transition made through the other (outbox polling wakes
//! each member's streams on its peers' commits). Real `hub` binaries in cluster mode on one
//! PostgreSQL, mosquitto and VictoriaMetrics; a sealed batch from a fake edge raises the event.

mod ingest_support;

use futures::StreamExt;
use ingest_support::*;
use protocol::uplink::{mac_key, Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wangge_testkit::hub::HubServe;
use wangge_testkit::{free_port, Mosquitto, Postgres, VictoriaMetrics};

const ADMIN: &str = "cluster-sse-admin-3e9d0a7c51b2f846";
const EDGE: &str = "edge-xq-01";

fn member_config(dir: &Path, id: &str, url: &str, mqtt: u16, vm: &str) -> PathBuf {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "data_dir = {data:?}\n[registry]\nseed_dir = {seed:?}\n\
             [broker]\nmode = \"external\"\n[broker.external]\nhost = \"127.0.0.1\"\nport = {mqtt}\n\
             client_id = \"wangge-{id}\"\n\
             [influx]\nurl = \"{vm}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n\
             [victoria]\nurl = \"{vm}\"\n\
             [cluster]\npostgres_url = \"{url}\"\nhub_id = \"{id}\"\nlease_ttl_ms = 2000\nheartbeat_ms = 400\n",
            data = dir.join(id).display().to_string(),
            seed = seed.display().to_string(),
        ),
    )
    .unwrap();
    path
}

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
    let hub_bin = PathBuf::from(env!("CARGO_BIN_EXE_hub"));
    let configs: Vec<PathBuf> = ["hub-a", "hub-b"]
        .iter()
        .map(|id| member_config(work.path(), id, &url, mosq.port, &vm.url()))
        .collect();
    let out = std::process::Command::new(&hub_bin)
        .arg("--config")
        .arg(&configs[0])
        .args(["registry", "import"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&hub_bin)
        .arg("--config")
        .arg(&configs[0])
        .args(["edge", "add", EDGE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let http: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let _members: Vec<HubServe> = (0..2)
        .map(|i| {
            HubServe::config(&hub_bin, &work.path().join(format!("hub-{i}.log")))
                .config_file(&configs[i])
                .admin_token(ADMIN)
                .ports(http[i], mosq.port)
                .start()
                .unwrap()
        })
        .collect();
    let client = reqwest::Client::new();
    // Which member owns the edge? The stream goes to the other one.
    let owner = loop {
        let s: serde_json::Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/cluster", http[0]))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let t0 = (now_ns() / 1_000_000_000 - 60) * 1_000_000_000;
    let tilt = (0..21)
        .map(|i| Reading {
            sensor: "MH-0001".into(),
            quantity: Quantity::Tilt,
            value: Value::Float(25.0),
            ts_ns: t0 + i * 1_000_000_000,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        })
        .collect();
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
