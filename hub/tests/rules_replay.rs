//! No alarm missed across a `kill -9` of the hub or when the rules fall behind ingest.
//!
//! A real `hub serve` process (registry seeded from `config/registry`, embedded broker and store,
//! events on), an MQTT client acting as the edge, the hub's HTTP API to look at readings, events
//! and metrics. The rules stage is held at a chosen point with the hub's test hooks
//! (`WANGGE_TEST_PAUSE_RULES`, `WANGGE_TEST_SLOW_RULES_MS`, see `hub/src/serve.rs`).
//!
//! The property under test: ingest acks a batch only after the rules evaluated its readings, so
//! a batch the hub dies with is unacked, the edge resends it, and its alarm is raised exactly once.

mod ingest_support;

mod hub_cli_support;

use hub_cli_support::{hub_cli, serve};
use ingest_support::{connect_edge, now_ns, Edge, Login};
use protocol::uplink::{mac_key, AckOutcome, Quality, Reading, ReadingFlags, UplinkBatch};
use protocol::{Quantity, Value};
use reqwest::StatusCode;
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN: &str = "rules-replay-admin-token-0123456789";
const EDGE: &str = "edge-xq-01";
const S: i64 = 1_000_000_000;

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry")
}

/// A `hub serve` process, killed (SIGKILL, by PID) when dropped.
struct Hub {
    serve: wangge_testkit::hub::HubServe,
    base: String,
    mqtt_port: u16,
    /// A client sending the admin token with every request.
    admin: reqwest::Client,
}

impl Hub {
    /// `hub-1` with the default config, its rules stage held before every group while the file
    /// `pause` exists.
    async fn start_pausable(dir: &Path, pause: &Path) -> Hub {
        Hub::start(
            dir,
            "hub-1",
            "",
            &[("WANGGE_TEST_PAUSE_RULES", pause.to_str().unwrap())],
        )
        .await
    }

    /// Starts `hub serve` as `name` on `dir/data` with `config` (TOML text) and extra
    /// environment, and waits for its health route.
    async fn start(dir: &Path, name: &str, config: &str, env: &[(&str, &str)]) -> Hub {
        let cfg_path = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg_path, config).unwrap();
        let mut cfg = serve(dir, &format!("{name}.log"), ADMIN)
            .config_file(&cfg_path)
            .data_dir(&dir.join("data"))
            .timeout(Duration::from_secs(60))
            .answering();
        for (k, v) in env {
            cfg = cfg.env(k, v);
        }
        let serve = cfg.start().unwrap();
        let auth = format!("Bearer {ADMIN}").parse().unwrap();
        let admin = reqwest::Client::builder()
            .default_headers(
                [(reqwest::header::AUTHORIZATION, auth)]
                    .into_iter()
                    .collect(),
            )
            .build()
            .unwrap();
        Hub {
            base: serve.base(),
            mqtt_port: serve.mqtt,
            serve,
            admin,
        }
    }

    fn log(&self) -> String {
        self.serve.log()
    }

    /// `kill -9`, and wait until the process is gone.
    fn kill9(mut self) {
        self.serve.proc.kill9();
    }

    async fn get(&self, path: &str) -> Json {
        let url = format!("{}/api/v1{path}", self.base);
        let r = self.admin.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// The `manhole.displaced` events of a component.
    async fn displaced(&self, component: &str) -> Vec<Json> {
        let body = self.get(&format!("/events?component={component}")).await;
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "manhole.displaced")
            .cloned()
            .collect()
    }

    /// Stored tilt points of a component around `t0`.
    async fn tilt_points(&self, component: &str, t0: i64) -> usize {
        let body = self
            .get(&format!(
                "/components/{component}/readings?quantity=tilt&from={}&to={}",
                t0 / 1_000_000 - 1000,
                t0 / 1_000_000 + 120_000
            ))
            .await;
        body["points"].as_array().map_or(0, Vec::len)
    }

    /// One sample of the hub's `/metrics` (0 when absent).
    async fn metric(&self, name: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// The hub's `/metrics` text.
    async fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.admin
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The edge logged in to this hub.
    async fn edge(&self, secret: &str) -> Edge {
        match connect_edge(self.mqtt_port, EDGE, secret, None).await {
            Login::Ok(e) => e,
            Login::Refused(why) => panic!("edge login refused: {why}\n{}", self.log()),
        }
    }
}

/// `kill -9` of `hub` while `edge` is connected to it; then its second life (`hub-2`, no hooks) on
/// the same `dir`, and the edge connected again.
async fn kill9_and_restart(hub: Hub, edge: Edge, dir: &Path, secret: &str) -> (Hub, Edge) {
    hub.kill9();
    drop(edge);
    let hub = Hub::start(dir, "hub-2", "", &[]).await;
    let edge = hub.edge(secret).await;
    (hub, edge)
}

/// A temp dir whose `data` holds the seeded registry, the edge's secret and its MAC key.
fn seeded() -> (tempfile::TempDir, String, [u8; 32]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    hub_cli(&data, &["registry", "import", seed_dir().to_str().unwrap()]);
    let secret = hub_cli(&data, &["edge", "add", EDGE]);
    let key = mac_key(&secret);
    (dir, secret, key)
}

/// (sensor, component) of the seed's manhole covers.
fn manhole_covers() -> Vec<(String, String)> {
    let csv = std::fs::read_to_string(seed_dir().join("sensors.csv")).unwrap();
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(2) == Some(&"manhole_cover")).then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

/// 21 tilt readings of 25°, 1 s apart from `t0`: > 15° for ≥ 10 s raises `manhole.displaced`.
fn displaced_batch(seq: u64, sensor: &str, t0: i64) -> UplinkBatch {
    UplinkBatch {
        edge_id: EDGE.into(),
        epoch: 1,
        seq,
        readings: (0..21)
            .map(|i| Reading {
                sensor: sensor.into(),
                quantity: Quantity::Tilt,
                value: Value::Float(25.0),
                ts_ns: t0 + i * S,
                quality: Quality::Good,
                flags: ReadingFlags::default(),
            })
            .collect(),
        gaps: vec![],
    }
}

async fn eventually(what: &str, hub: &Hub, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts one `manhole.displaced` event on `component`, raised once (count 1, one `raise` in
/// its history); returns it.
async fn exactly_one_alarm(hub: &Hub, component: &str) -> Json {
    let events = hub.displaced(component).await;
    assert_eq!(events.len(), 1, "{component}: {events:?}");
    assert_eq!(events[0]["count"], 1, "{component}: {events:?}");
    let full = hub.get(&format!("/events/{}", events[0]["id"])).await;
    let raises = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "raise" || h["action"] == "repeat")
        .count();
    assert_eq!(raises, 1, "{component}: {full}");
    full
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_after_storing_but_before_the_rules_raises_the_alarm_once_after_restart() {
    let (dir, secret, key) = seeded();
    let (sensor, component) = manhole_covers().remove(0);
    let pause = dir.path().join("pause-rules");
    std::fs::write(&pause, b"").unwrap();

    // First life: the rules stage is held before every group.
    let hub = Hub::start_pausable(dir.path(), &pause).await;
    let mut edge = hub.edge(&secret).await;
    let t0 = (now_ns() / S - 120) * S;
    let batch = displaced_batch(1, &sensor, t0);
    edge.publish_batch(EDGE, &batch, &key).await;

    // Stored in the embedded store…
    eventually("the batch's 21 readings stored", &hub, async || {
        hub.tilt_points(&component, t0).await == 21
    })
    .await;
    // …but not evaluated by the rules, hence not acked and not recorded as stored.
    assert_eq!(
        hub.metric("wangge_ingest_groups_evaluated_total").await,
        0.0
    );
    assert_eq!(hub.metric("wangge_ingest_acks_sent_total").await, 0.0);
    assert!(hub.displaced(&component).await.is_empty());
    assert!(
        edge.acks.try_recv().is_err(),
        "no ack before the rules saw the batch"
    );

    // kill -9 at that point. Second life, no hooks: the edge resends its unacked batch.
    let (hub, mut edge) = kill9_and_restart(hub, edge, dir.path(), &secret).await;
    let ack = edge.deliver(&batch, &key).await;
    assert_eq!(
        (ack.epoch, ack.seq, ack.outcome),
        (1, 1, AckOutcome::Stored),
        "the dedup table had not recorded the batch: it is stored (again, without effect) and evaluated"
    );
    // Acked ⇒ evaluated: the alarm exists as soon as the ack does.
    let event = exactly_one_alarm(&hub, &component).await;
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["trigger"]["quantity"], "tilt");
    assert_eq!(event["trigger"]["threshold"], 15.0);
    assert_eq!(hub.tilt_points(&component, t0).await, 21, "stored once");

    // A further resend is a duplicate: acked as such, nothing raised again.
    let ack = edge.deliver(&batch, &key).await;
    assert_eq!((ack.seq, ack.outcome), (1, AckOutcome::Duplicate));
    exactly_one_alarm(&hub, &component).await;
    assert_eq!(hub.tilt_points(&component, t0).await, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_slower_than_ingest_hold_ingest_back_and_miss_no_alarm() {
    let (dir, secret, key) = seeded();
    let covers: Vec<(String, String)> = manhole_covers().into_iter().take(40).collect();
    assert_eq!(covers.len(), 40);

    // One batch per group and one group queued for the rules, which take 150 ms per group:
    // ingest must wait for them (the old broadcast would have dropped groups here).
    let config = "[ingest]\ngroup_batches_max = 1\nrules_queue_max = 1\n";
    let hub = Hub::start(
        dir.path(),
        "hub",
        config,
        &[("WANGGE_TEST_SLOW_RULES_MS", "150")],
    )
    .await;
    let mut edge = hub.edge(&secret).await;
    let t0 = (now_ns() / S - 120) * S;
    let batches: Vec<UplinkBatch> = covers
        .iter()
        .enumerate()
        .map(|(i, (sensor, _))| displaced_batch(i as u64 + 1, sensor, t0))
        .collect();
    for b in &batches {
        edge.publish_batch(EDGE, b, &key).await;
    }
    // The last batch once more, as an edge resending after a timeout would: while its first copy
    // waits for the rules it is dropped (its ack answers both), later it is a duplicate.
    edge.publish_batch(EDGE, &batches[39], &key).await;

    let component_of: HashMap<u64, &str> = covers
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (i as u64 + 1, c.as_str()))
        .collect();
    let mut stored: HashSet<u64> = HashSet::new();
    let mut duplicate_acks = 0;
    while stored.len() < 40 {
        let ack = edge.next_ack().await;
        match ack.outcome {
            AckOutcome::Stored => {
                assert!(stored.insert(ack.seq), "batch {} acked twice", ack.seq);
                // Acked ⇒ evaluated: the batch's alarm is already there.
                exactly_one_alarm(&hub, component_of[&ack.seq]).await;
            }
            AckOutcome::Duplicate => duplicate_acks += 1,
        }
    }
    let resent_dropped = hub
        .metric("wangge_ingest_batches_resent_in_flight_total")
        .await;
    if duplicate_acks == 0 && resent_dropped == 0.0 {
        // The resend of batch 40 may still be on its way: its duplicate ack follows.
        let ack = edge.next_ack().await;
        assert_eq!((ack.seq, ack.outcome), (40, AckOutcome::Duplicate));
        duplicate_acks += 1;
    }
    let resent_dropped = hub
        .metric("wangge_ingest_batches_resent_in_flight_total")
        .await;
    assert_eq!(
        duplicate_acks as f64 + resent_dropped,
        1.0,
        "the resend is either dropped in flight or acked as a duplicate"
    );

    // Every alarm exactly once, no group skipped, ingest held back.
    for (_, component) in &covers {
        exactly_one_alarm(&hub, component).await;
    }
    let evaluated = hub.metric("wangge_ingest_groups_evaluated_total").await;
    let committed = hub.metric("wangge_ingest_groups_committed_total").await;
    assert_eq!(evaluated, committed, "every stored group evaluated");
    assert!(evaluated >= 40.0, "{evaluated} groups evaluated");
    let waited = hub.metric("wangge_ingest_rules_wait_seconds_total").await;
    assert!(
        waited > 0.0,
        "ingest waited for the rules (backpressure): {waited} s"
    );
    let metrics = hub.metrics_text().await;
    assert!(
        !metrics.contains("wangge_events_groups_missed_total"),
        "groups can no longer be missed, so the counter is gone"
    );
    println!(
        "40 batches, rules 150 ms per group: ingest waited {waited:.2} s for the rules; \
         {evaluated} groups evaluated; resend: {duplicate_acks} duplicate ack, {resent_dropped} dropped in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_in_the_middle_of_a_for_s_condition_still_raises_it() {
    let (dir, secret, key) = seeded();
    let (sensor, component) = manhole_covers().remove(1);
    let pause = dir.path().join("pause-rules");

    // Tilt > 15° must hold 10 s to raise. It holds 12 s in all: 6 s in a first batch, evaluated
    // and acked (never resent), 6 s in a second one, stored when the hub is killed.
    let hub = Hub::start_pausable(dir.path(), &pause).await;
    let mut edge = hub.edge(&secret).await;
    let t0 = (now_ns() / S - 120) * S;
    let mut whole = displaced_batch(0, &sensor, t0);
    whole.readings.truncate(13); // 0 s … 12 s
    let second = UplinkBatch {
        seq: 2,
        readings: whole.readings.split_off(6), // 6 s … 12 s
        ..whole.clone()
    };
    let first = UplinkBatch { seq: 1, ..whole };
    let ack = edge.deliver(&first, &key).await;
    assert_eq!((ack.seq, ack.outcome), (1, AckOutcome::Stored));
    assert!(hub.displaced(&component).await.is_empty(), "6 s: pending");

    std::fs::write(&pause, b"").unwrap();
    edge.publish_batch(EDGE, &second, &key).await;
    eventually("the second batch stored", &hub, async || {
        hub.tilt_points(&component, t0).await == 13
    })
    .await;
    assert!(edge.acks.try_recv().is_err(), "second batch not acked");

    // After the restart only the second batch comes again. The rules resume the count from 0 s
    // (persisted in events.db), not from 6 s: the alarm is raised at 10 s.
    let (hub, mut edge) = kill9_and_restart(hub, edge, dir.path(), &secret).await;
    let ack = edge.deliver(&second, &key).await;
    assert_eq!((ack.seq, ack.outcome), (2, AckOutcome::Stored));
    exactly_one_alarm(&hub, &component).await;
    assert_eq!(hub.tilt_points(&component, t0).await, 13);
}
