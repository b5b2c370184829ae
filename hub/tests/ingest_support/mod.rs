//! Shared parts of the ingest tests: an in-memory registry, an MQTT edge client, batches.
#![allow(dead_code)]

pub mod mosquitto_clients;

use hub::broker::{self, BrokerConfig, BrokerHandle};
use hub::ingest::{self, IngestConfig, IngestHandle, RulesStage};
use hub::registry::{
    secrets, EdgeCredentials, Freshness, GapReport, IngestRefusal, RegistryError, RegistryStore,
    SensorAssignment, StatusMark,
};
use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::TimeSeriesSink;
use protocol::uplink::{
    mac_key, topics, Ack, EdgeStatus, Quality, Reading, ReadingFlags, UplinkBatch,
};
use protocol::{Quantity, Value};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The registry as ingest sees it, in memory (the SQLite one belongs to the registry module).
#[derive(Default)]
pub struct MemRegistry {
    pub edges: Mutex<HashMap<String, EdgeCredentials>>,
    pub sensors: Mutex<HashMap<String, SensorAssignment>>,
    pub statuses: Mutex<Vec<EdgeStatus>>,
    pub seen: Mutex<Vec<(String, i64)>>,
    pub unassigned: Mutex<Vec<(String, String)>>,
    pub gaps: Mutex<Vec<(String, protocol::uplink::Gap)>>,
    pub status_marks: Mutex<HashMap<String, StatusMark>>,
    /// Every `audit_ingest` call: (kind, edge, sensor).
    pub audits: Mutex<Vec<(String, String, String)>>,
}

impl MemRegistry {
    /// Issues credentials for `edge_id` and returns the secret (as `hub edge add` would).
    pub fn add_edge(&self, edge_id: &str) -> String {
        let secret = secrets::generate();
        self.edges.lock().unwrap().insert(
            edge_id.to_string(),
            EdgeCredentials {
                edge_id: edge_id.to_string(),
                password_hash: secrets::hash(&secret),
                mac_key: mac_key(&secret),
                revoked: false,
            },
        );
        secret
    }

    pub fn assign(&self, sensor: &str, component: &str) {
        self.assign_on_edge(sensor, component, None);
    }

    /// Registers `sensor` on `component`, wired to `edge` (readings from others are refused).
    pub fn assign_on_edge(&self, sensor: &str, component: &str, edge: Option<&str>) {
        self.sensors.lock().unwrap().insert(
            sensor.to_string(),
            SensorAssignment {
                sensor_id: sensor.to_string(),
                component_id: Some(component.to_string()),
                component_type: Some("manhole_cover".into()),
                grid_cell: Some("grid-1".into()),
                owner_department: Some("water".into()),
                maintainer_department: None,
                edge_id: edge.map(str::to_string),
            },
        );
    }
}

impl RegistryStore for MemRegistry {
    fn sensor_assignment(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorAssignment>, RegistryError> {
        Ok(self.sensors.lock().unwrap().get(sensor_id).cloned())
    }
    fn edge_credentials(&self, edge_id: &str) -> Result<Option<EdgeCredentials>, RegistryError> {
        Ok(self.edges.lock().unwrap().get(edge_id).cloned())
    }
    fn record_edge_status(&self, status: &EdgeStatus) -> Result<Freshness, RegistryError> {
        let mut marks = self.status_marks.lock().unwrap();
        let last = marks.get(status.edge_id.as_str()).copied();
        let fresh = StatusMark::judge(last.as_ref(), status);
        if matches!(fresh, Freshness::Fresh | Freshness::AnnouncedWill) {
            if let Some(m) = StatusMark::after(last.as_ref(), status, fresh) {
                marks.insert(status.edge_id.0.clone(), m);
            }
            self.statuses.lock().unwrap().push(status.clone());
        }
        Ok(fresh)
    }
    fn audit_ingest(&self, r: &IngestRefusal<'_>) -> Result<bool, RegistryError> {
        let mut a = self.audits.lock().unwrap();
        let row = (
            r.kind.to_string(),
            r.edge_id.to_string(),
            r.sensor_id.to_string(),
        );
        let first = !a.contains(&row);
        a.push(row);
        Ok(first)
    }
    fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError> {
        self.seen.lock().unwrap().push((edge_id.to_string(), at_ns));
        Ok(())
    }
    fn record_gaps(&self, r: &GapReport<'_>, _at_ns: i64) -> Result<(), RegistryError> {
        let mut g = self.gaps.lock().unwrap();
        g.extend(
            r.gaps
                .iter()
                .map(|gap| (r.edge_id.to_string(), gap.clone())),
        );
        Ok(())
    }
    fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        _at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.unassigned
            .lock()
            .unwrap()
            .push((sensor_id.to_string(), edge_id.to_string()));
        Ok(())
    }
}

/// `n` readings of `sensor` (tilt), one per second from `t0_ns`.
pub fn readings(sensor: &str, t0_ns: i64, n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            sensor: sensor.into(),
            quantity: Quantity::Tilt,
            value: Value::Float(i as f64 * 0.5),
            ts_ns: t0_ns + i as i64 * 1_000_000_000,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        })
        .collect()
}

pub fn batch(edge: &str, epoch: u64, seq: u64, readings: Vec<Reading>) -> UplinkBatch {
    UplinkBatch {
        edge_id: edge.into(),
        epoch,
        seq,
        readings,
        gaps: vec![],
    }
}

#[allow(unused_imports)]
pub use wangge_testkit::{eventually, now_ns};

/// An MQTT client acting as an edge: logs in as `id`, listens to its acks.
pub struct Edge {
    pub id: String,
    pub client: AsyncClient,
    pub acks: mpsc::Receiver<Ack>,
}

/// How an edge's login ended.
pub enum Login {
    Ok(Edge),
    Refused(String),
}

impl Login {
    /// The logged-in edge, failing the test (naming `who`) if the broker refused it.
    pub fn expect_ok(self, who: &str) -> Edge {
        match self {
            Login::Ok(e) => e,
            Login::Refused(e) => panic!("login of {who} refused: {e}"),
        }
    }
}

pub async fn connect_edge(
    port: u16,
    id: &str,
    password: &str,
    tls_ca_pem: Option<Vec<u8>>,
) -> Login {
    let host = if tls_ca_pem.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_credentials(id, password);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(2 << 20, 2 << 20);
    if let Some(ca) = tls_ca_pem {
        opts.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            },
        ));
    }
    let (client, mut el) = AsyncClient::new(opts, 1000);
    let (ack_tx, acks) = mpsc::channel(10_000);
    let (up_tx, mut up_rx) = mpsc::channel::<Result<(), String>>(1);
    let ack_topic = topics::acks(id);
    // Only acks the hub sealed for this edge count: anything else is what an edge ignores.
    let ack_key = mac_key(password);
    let ack_edge = id.to_string();
    let sub = client.clone();
    tokio::spawn(async move {
        let mut connected = false;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    let _ = sub.subscribe(&ack_topic, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = up_tx.try_send(Ok(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(a) = Ack::open(&p.payload, &ack_key, &ack_edge) {
                        if ack_tx.send(a).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if !connected {
                        let _ = up_tx.try_send(Err(e.to_string()));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(30), up_rx.recv()).await {
        Ok(Some(Ok(()))) => Login::Ok(Edge {
            id: id.to_string(),
            client,
            acks,
        }),
        Ok(Some(Err(e))) => Login::Refused(e),
        Ok(None) => Login::Refused("connection task ended".into()),
        Err(_) => Login::Refused("no CONNACK within 30 s".into()),
    }
}

impl Edge {
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish queued");
    }

    /// Seals with `key` and publishes on the batch topic of `topic_edge`.
    pub async fn publish_batch(&self, topic_edge: &str, b: &UplinkBatch, key: &[u8; 32]) {
        self.publish_raw(&topics::batches(topic_edge), b.seal(key))
            .await;
    }

    /// Publishes `batches` (each sealed with its key) on this edge's topic again and again,
    /// like a real edge, until an ack comes back within a second; returns it.
    pub async fn publish_until_acked(&mut self, batches: &[(&UplinkBatch, &[u8; 32])]) -> Ack {
        loop {
            for (b, key) in batches {
                let topic_edge = self.id.clone();
                self.publish_batch(&topic_edge, b, key).await;
            }
            if let Ok(Some(a)) =
                tokio::time::timeout(Duration::from_secs(1), self.acks.recv()).await
            {
                return a;
            }
        }
    }

    /// Publishes a sealed (or forged) status on this edge's status topic.
    pub async fn publish_status(&self, payload: Vec<u8>) {
        self.publish_raw(&topics::status(&self.id), payload).await;
    }

    /// Publishes `b` sealed with `key` on this edge's topic and returns the next ack.
    pub async fn deliver(&mut self, b: &UplinkBatch, key: &[u8; 32]) -> Ack {
        let topic_edge = self.id.clone();
        self.publish_batch(&topic_edge, b, key).await;
        self.next_ack().await
    }

    /// Next ack, waiting at most 30 s.
    pub async fn next_ack(&mut self) -> Ack {
        tokio::time::timeout(Duration::from_secs(30), self.acks.recv())
            .await
            .expect("an ack within 30 s")
            .expect("ack stream open")
    }
}

/// Tilt points of `sensor` in an embedded store, over all time.
pub fn stored(store: &hub::timeseries::embedded::EmbeddedStore, sensor: &str) -> usize {
    use hub::timeseries::TimeSeriesQuery;
    store
        .points(
            sensor,
            Quantity::Tilt,
            i64::MIN / 2,
            i64::MAX / 2,
            1_000_000,
        )
        .unwrap()
        .len()
}

/// Logs in as edge `id`, failing the test if the broker refuses.
pub async fn login(port: u16, id: &str, secret: &str) -> Edge {
    connect_edge(port, id, secret, None).await.expect_ok(id)
}

/// A SQLite registry in `dir` with the repo's seed (`config/registry`) imported.
pub fn seeded_sqlite_registry(dir: &Path) -> Arc<hub::registry::SqliteRegistry> {
    let registry =
        Arc::new(hub::registry::SqliteRegistry::open(&dir.join("registry.sqlite")).unwrap());
    let seed_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub::registry::seed::import_dir(registry.as_ref(), &seed_dir).expect("seed imports");
    registry
}

/// The embedded broker's config with its plain listener on a free loopback port.
pub fn loopback_broker() -> BrokerConfig {
    BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    }
}

/// An embedded store in `dir`, and ingest of the default config (no rules stage) taking batches
/// from `broker` into it.
pub fn store_and_ingest(
    dir: &Path,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
) -> (Arc<EmbeddedStore>, IngestHandle) {
    store_and_ingest_with(dir, broker, registry, IngestConfig::default(), None)
}

/// An embedded store in `dir`, and ingest (`cfg` with `dir` as its data dir) taking batches
/// from `broker` into it, through the rules stage `rules` if there is one.
pub fn store_and_ingest_with(
    dir: &Path,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    cfg: IngestConfig,
    rules: Option<Box<dyn RulesStage>>,
) -> (Arc<EmbeddedStore>, IngestHandle) {
    let store = Arc::new(EmbeddedStore::open(&EmbeddedConfig::in_dir(dir)).expect("store opens"));
    let sinks: Vec<Arc<dyn TimeSeriesSink>> = vec![store.clone()];
    let cfg = IngestConfig {
        data_dir: dir.to_path_buf(),
        ..cfg
    };
    let ingest =
        ingest::spawn_with_rules(&cfg, broker, registry, sinks, rules).expect("ingest starts");
    (store, ingest)
}

/// Embedded broker → ingest → embedded store, over an in-memory registry.
pub struct EmbeddedHub {
    pub broker: BrokerHandle,
    pub ingest: IngestHandle,
    pub store: Arc<EmbeddedStore>,
}

impl EmbeddedHub {
    pub fn start(
        dir: &Path,
        registry: Arc<MemRegistry>,
        broker_cfg: &BrokerConfig,
        cfg: IngestConfig,
        rules: Option<Box<dyn RulesStage>>,
    ) -> EmbeddedHub {
        let broker = broker::start(broker_cfg, registry.clone()).expect("broker starts");
        let (store, ingest) = store_and_ingest_with(dir, &broker, registry, cfg, rules);
        EmbeddedHub {
            broker,
            ingest,
            store,
        }
    }

    /// The plain listener's port.
    pub fn port(&self) -> u16 {
        self.broker.listen.expect("embedded listener").port()
    }
}

/// A data dir and an in-memory registry in which one edge holds credentials.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub reg: Arc<MemRegistry>,
    pub edge: String,
    pub secret: String,
    /// The edge's MAC key (of its secret).
    pub key: [u8; 32],
}

impl Site {
    /// A site where `edge` holds credentials.
    pub fn with_edge(edge: &str) -> Site {
        let reg = Arc::new(MemRegistry::default());
        let secret = reg.add_edge(edge);
        Site {
            dir: tempfile::tempdir().unwrap(),
            reg,
            edge: edge.to_string(),
            key: mac_key(&secret),
            secret,
        }
    }

    /// A hub of the default configuration on the site's dir and registry.
    pub fn start(&self) -> EmbeddedHub {
        self.start_with(&loopback_broker(), IngestConfig::default(), None)
    }

    pub fn start_with(
        &self,
        broker_cfg: &BrokerConfig,
        cfg: IngestConfig,
        rules: Option<Box<dyn RulesStage>>,
    ) -> EmbeddedHub {
        EmbeddedHub::start(self.dir.path(), self.reg.clone(), broker_cfg, cfg, rules)
    }

    /// The site's edge logged in to `hub`.
    pub async fn login(&self, hub: &EmbeddedHub) -> Edge {
        login(hub.port(), &self.edge, &self.secret).await
    }
}

/// Counters that append their Prometheus text to a string.
pub trait Rendered {
    fn render(&self, out: &mut String);
}

impl Rendered for hub::ingest::IngestMetrics {
    fn render(&self, out: &mut String) {
        self.render_prometheus(out);
    }
}

impl Rendered for hub::broker::BrokerMetrics {
    fn render(&self, out: &mut String) {
        self.render_prometheus(out);
    }
}

impl<T: Rendered> Rendered for Arc<T> {
    fn render(&self, out: &mut String) {
        (**self).render(out);
    }
}

/// Asserts that the Prometheus text of `metrics` holds `line`.
pub fn assert_rendered(metrics: &impl Rendered, line: &str) {
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(text.contains(line), "{line} in {text}");
}
