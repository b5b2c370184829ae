//! The hub the dashboard tests drive: a temp data dir with the demo seed registry imported, the
//! seed's edge registered and tokens for the admin, 水务 (sw) and 消防 (xf); `hub serve` on it
//! (restartable on the same dir); and a client acting as that edge on the hub's embedded broker,
//! which publishes sealed batches and waits for every ack (only then are the readings stored).

use protocol::uplink::{mac_key, topics, Ack, EdgeStatus, Reading, UplinkBatch};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wangge_testkit::hub::HubServe;
use wangge_testkit::{bin, workspace_root};

/// The seed's edge (the one at 西青, whose sensors include MH-0001).
pub const SEED_EDGE: &str = "edge-xq-01";
/// How long the hub, any one API call or any MQTT step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);
/// Readings per batch the edge client seals.
const BATCH_READINGS: usize = 200;

/// A seeded data dir, its secrets, and the hub serving it once started.
pub struct SeededHub {
    serve: Option<HubServe>,
    dir: tempfile::TempDir,
    config: Option<PathBuf>,
    pub edge_secret: String,
    pub admin: String,
    pub sw: String,
    pub xf: String,
}

impl SeededHub {
    /// Imports the seed, registers [`SEED_EDGE`] and adds the tokens; `hub_toml`, when given, is
    /// written as the hub's config file. Not started: the caller may still change the data dir.
    pub fn prepare(hub_toml: Option<&str>) -> SeededHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let cli = |args: &[&str]| wangge_testkit::hub::cli(&bin("hub"), &data, args);
        let seed = workspace_root().join("config/registry");
        cli(&["registry", "import", seed.to_str().expect("utf-8 path")]);
        let edge_secret = cli(&["edge", "add", SEED_EDGE]);
        let admin = cli(&["token", "add", "--scope", "admin"]);
        let sw = cli(&["token", "add", "--scope", "write", "--department", "sw"]);
        let xf = cli(&["token", "add", "--scope", "write", "--department", "xf"]);
        let config = hub_toml.map(|text| {
            let path = dir.path().join("hub.toml");
            std::fs::write(&path, text).expect("write hub.toml");
            path
        });
        SeededHub {
            serve: None,
            dir,
            config,
            edge_secret,
            admin,
            sw,
            xf,
        }
    }

    /// [`SeededHub::prepare`], then [`SeededHub::start`].
    pub fn started(hub_toml: Option<&str>) -> SeededHub {
        let mut hub = SeededHub::prepare(hub_toml);
        hub.start();
        hub
    }

    /// The hub's data dir.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `hub <args>` on the data dir (a token for another department, say), printing its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        wangge_testkit::hub::cli(&bin("hub"), &self.data(), args)
    }

    /// The temp dir holding the data dir, the log and the config (also a place for the browser).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `hub serve` on free ports, returning once its API answers.
    pub fn start(&mut self) {
        let mut c = HubServe::config(&bin("hub"), &self.dir.path().join("hub.log"))
            .data_dir(&self.data())
            .cwd(self.dir.path())
            .timeout(WAIT)
            .answering();
        if let Some(config) = &self.config {
            c = c.config_file(config);
        }
        self.serve = Some(c.start().expect("start hub"));
    }

    /// `kill -9`, then the same binary on the same data dir.
    pub fn restart(&mut self) {
        if let Some(mut s) = self.serve.take() {
            s.proc.kill9();
        }
        self.start();
    }

    pub fn serve(&self) -> &HubServe {
        self.serve.as_ref().expect("hub running")
    }

    /// The end of the hub's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.serve().proc.log_tail(3000)
    }

    /// `http://127.0.0.1:<http><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.serve().base())
    }

    /// `method /api/v1/<path>` as `token` with an optional JSON body: (status, JSON body or null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Json>,
    ) -> (u16, Json) {
        let mut req = reqwest::Client::new()
            .request(method, self.url(&format!("/api/v1/{path}")))
            .bearer_auth(token)
            .timeout(WAIT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("hub answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Json::Null))
    }

    /// `GET /api/v1/<path>` as `token`.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Json) {
        self.call(reqwest::Method::GET, token, path, None).await
    }

    /// Waits (up to [`WAIT`]) for the hub to list an event of `event_type` on `component`, as
    /// the admin sees it; returns its id.
    pub async fn raised_event(&self, component: &str, event_type: &str) -> i64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, v) = self
                .get(&self.admin, &format!("events?component={component}"))
                .await;
            assert_ne!(status, 404, "the hub does not serve /api/v1/events");
            let found = v["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|e| e["type"] == event_type)
                    .and_then(|e| e["id"].as_i64())
            });
            if let Some(id) = found {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no {event_type} event for {component}: {v}; hub log: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An MQTT connection to the hub's broker as [`SEED_EDGE`], signed in with its secret.
    pub fn edge_client(&self, cap: usize) -> (AsyncClient, EventLoop) {
        let mut opts = MqttOptions::new(SEED_EDGE, "127.0.0.1", self.serve().mqtt);
        opts.set_credentials(SEED_EDGE, &self.edge_secret);
        opts.set_keep_alive(Duration::from_secs(10));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        AsyncClient::new(opts, cap)
    }

    /// Queues `status` on the edge's status topic, sealed with its secret.
    pub async fn queue_status(&self, client: &AsyncClient, status: &EdgeStatus) {
        client
            .publish(
                topics::status(SEED_EDGE),
                QoS::AtLeastOnce,
                false,
                status.seal(&mac_key(&self.edge_secret)),
            )
            .await
            .expect("publish queued");
    }

    /// Publishes `readings` as [`SEED_EDGE`] (epoch 1, batches of 200 sealed with its secret),
    /// then `status` when given, and waits for every batch's ack: only then are they stored.
    pub async fn send_as_edge(&self, readings: Vec<Reading>, status: Option<&EdgeStatus>) {
        let (client, mut el) = self.edge_client(100);
        client
            .subscribe(topics::acks(SEED_EDGE), QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        let key = mac_key(&self.edge_secret);
        let chunks: Vec<&[Reading]> = readings.chunks(BATCH_READINGS).collect();
        let deadline = Instant::now() + WAIT;
        let mut subscribed = false;
        let mut acked = BTreeSet::new();
        while acked.len() < chunks.len() {
            assert!(
                Instant::now() < deadline,
                "acks {acked:?} of {} batches",
                chunks.len()
            );
            match next_event(&mut el).await {
                Ok(Event::Incoming(Packet::SubAck(_))) if !subscribed => {
                    subscribed = true;
                    for (i, chunk) in chunks.iter().enumerate() {
                        let b = UplinkBatch {
                            edge_id: SEED_EDGE.into(),
                            epoch: 1,
                            seq: i as u64 + 1,
                            readings: chunk.to_vec(),
                            gaps: vec![],
                        };
                        client
                            .publish(
                                topics::batches(SEED_EDGE),
                                QoS::AtLeastOnce,
                                false,
                                b.seal(&key),
                            )
                            .await
                            .expect("publish queued");
                    }
                    if let Some(s) = status {
                        self.queue_status(&client, s).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(a) = Ack::open(&p.payload, &key, SEED_EDGE) {
                        acked.insert(a.seq);
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("edge connection failed: {e}; hub log: {}", self.log_tail()),
            }
        }
        let _ = client.disconnect().await;
    }
}

/// The next event of `el`, failing the test if the connection makes no progress in [`WAIT`].
pub async fn next_event(el: &mut EventLoop) -> Result<Event, rumqttc::ConnectionError> {
    tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("MQTT progress")
}
