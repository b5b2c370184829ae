//! The MQTT broker edges talk to, behind one small seam.
//!
//! Whatever the broker (the embedded rumqttd by default, or an external one such as mosquitto
//! reached with rumqttc), the rest of the hub sees the same [`BrokerHandle`]: a bounded stream
//! of [`Inbound`] messages on the edge topics (`wangge/v1/edges/+/batches`, `.../status`) and a
//! bounded queue of [`Outbound`] publishes (acks). Backpressure flows through both queues: if
//! ingest is slow, the broker link stops reading and the broker's own limits apply.
//!
//! Who may do what: in embedded mode the gate ([`gate`]) owns the public listeners and enforces
//! the principals' rules ([`gate::acl`]) on CONNECT, SUBSCRIBE and PUBLISH before rumqttd sees a
//! byte. Ingest still trusts a batch only if its topic's edge id, the batch's `edge_id` and its
//! HMAC (keyed by that edge's secret) all agree: the broker is never trusted to say who sent what.

pub mod embedded;
pub mod external;
pub mod gate;
pub mod log_filter;
pub mod mosquitto;

pub use gate::acl::{MqttPrincipal, DEPARTMENT_USER_PREFIX, HUB_CLIENT_ID_PREFIX};

use crate::registry::RegistryStore;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Broker settings (`[broker]` in the hub config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `embedded` (default): rumqttd inside the hub. `external`: connect to another broker.
    pub mode: BrokerMode,
    /// Plain MQTT listener of the embedded broker. Default `0.0.0.0:1883`.
    pub listen: SocketAddr,
    /// TLS listener of the embedded broker, when configured (default port 8883).
    pub tls: Option<TlsListenerConfig>,
    /// With `tls` configured, keep the plain listener too. Default false: TLS configured means
    /// plain MQTT is off, so a secret never crosses the network in the clear by accident.
    pub keep_plain: bool,
    /// How often the gate re-checks the credentials of open connections, ms; a revoked or
    /// re-issued edge or department user is disconnected within this. Default 1000.
    pub revocation_check_ms: u64,
    /// Largest MQTT payload accepted, bytes. Default 1 MiB (a 500-reading batch is ≈ 20 KiB).
    pub max_payload_bytes: usize,
    /// QoS 1 messages in flight per edge connection. Default 100.
    pub max_inflight_count: usize,
    /// Most simultaneous connections. Default 10 000.
    pub max_connections: usize,
    /// Seconds an accepted socket may take to send CONNECT. Default 10.
    pub connect_timeout_ms: u16,
    /// Capacity of the inbound queue between the broker link and ingest, messages. Default 512.
    /// Memory bound: `inbound_queue_max × max_payload_bytes` (512 MiB worst case, ≈ 10 MiB with
    /// 500-reading batches); it also bounds an ingest group (512 × 500 readings ≥ the 200k cap).
    pub inbound_queue_max: usize,
    /// Embedded broker: size of one in-memory segment of the batches log, bytes. Default 2 MiB.
    /// rumqttd keeps every message published on a filter in memory segments, read or not, and
    /// drops the oldest segment only when a new one is needed; so this log is a cache that
    /// fills and then stays at `router_segments_max × router_segment_bytes_max` of payload,
    /// 8 MiB by default, full after ≈ 1 min at 8 000 readings/s. Its memory is more than the
    /// payload: each stored batch also pins the socket read buffer it was parsed from and a
    /// ≈ 300-byte entry (the soak measured ≈ 1.3–1.7 × with 8 MiB segments, drifting up with
    /// smaller batches). It only has to hold what the hub's link has not read yet, beyond the
    /// `inbound_queue_max` batches already queued for ingest: 8 MiB is ≈ 400 more batches of
    /// 20 KiB (edges keep ≤ 16 in flight each); a batch skipped because ingest fell further
    /// behind is resent by its edge (it was never acked), not lost.
    pub router_segment_bytes_max: usize,
    /// Embedded broker: segments kept per filter (the active one included). Default 4.
    pub router_segments_max: usize,
    /// External-broker mode only.
    pub external: Option<ExternalBrokerConfig>,
}

/// Which broker the hub uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    #[default]
    Embedded,
    External,
}

/// TLS (rustls) listener of the embedded broker. Edges use the same username/secret over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// Default `0.0.0.0:8883`.
    #[serde(default = "default_tls_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8 or RSA).
    pub key_path: PathBuf,
}

/// Connection to an external broker (e.g. mosquitto with `pattern write wangge/v1/edges/%u/#`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalBrokerConfig {
    pub host: String,
    /// Default 1883.
    #[serde(default = "default_external_port")]
    pub port: u16,
    /// Default `wangge-hub`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Where the hub writes mosquitto's `passwd` and `acl` files from the registry (edges and
    /// department MQTT users), rewritten when credentials change. Default: none (the operator
    /// provisions the broker). Needs `username` and `password` (the hub's own account).
    #[serde(default)]
    pub provision_dir: Option<PathBuf>,
    /// mosquitto's `pid_file`: after rewriting the files the hub sends it SIGHUP, so mosquitto
    /// reloads them and disconnects clients whose password no longer holds. Default: none.
    #[serde(default)]
    pub mosquitto_pid_file: Option<PathBuf>,
}

fn default_tls_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8883))
}
fn default_external_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "wangge-hub".to_string()
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: BrokerMode::Embedded,
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            tls: None,
            keep_plain: false,
            revocation_check_ms: 1000,
            max_payload_bytes: 1 << 20,
            max_inflight_count: 100,
            max_connections: 10_000,
            connect_timeout_ms: 10_000,
            inbound_queue_max: 512,
            router_segment_bytes_max: 2 << 20,
            router_segments_max: 4,
            external: None,
        }
    }
}

/// A message an edge published on one of the hub's subscriptions.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub payload: Bytes,
}

/// A message the hub publishes (acks), QoS 1.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker config: {0}")]
    Config(String),
    #[error("broker link: {0}")]
    Link(String),
    #[error("broker listener {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Capacity of the queue of edges' configuration reports (`.../config-report`), messages. A
/// report that finds it full is dropped (logged): the edge reports again with its next status
/// change, and ingest is never held up by it.
pub const CONFIG_REPORTS_QUEUE_MAX: usize = 64;

/// True for an edge's configuration report topic (`wangge/v1/edges/{id}/config-report`): the
/// broker link hands those to the fleet ([`BrokerHandle::take_config_reports`]), not to ingest.
pub fn is_config_report(topic: &str) -> bool {
    topic.ends_with("/config-report") && protocol::uplink::topics::edge_of(topic).is_some()
}

/// True for an edge's desired-configuration topic (`wangge/v1/edges/{id}/config`): the hub's
/// publishes there are retained, so an edge that connects later still gets its newest version.
pub fn is_config(topic: &str) -> bool {
    topic.ends_with("/config")
        && topic.matches('/').count() == 4
        && protocol::uplink::topics::edge_of(topic).is_some()
}

/// Hands a configuration report to the fleet's queue without waiting (see
/// [`CONFIG_REPORTS_QUEUE_MAX`]).
pub(crate) fn forward_config_report(reports: &mpsc::Sender<Inbound>, msg: Inbound) {
    if let Err(e) = reports.try_send(msg) {
        tracing::warn!(error = %e, "configuration report dropped: the fleet's queue is full or gone");
    }
}

/// A running broker connection: the seam between the broker and ingest.
pub struct BrokerHandle {
    inbound: Mutex<Option<mpsc::Receiver<Inbound>>>,
    /// Edges' configuration reports, for the fleet (`crate::fleet`).
    config_reports: Mutex<Option<mpsc::Receiver<Inbound>>>,
    outbound: mpsc::Sender<Outbound>,
    /// Address of the plain listener (embedded mode).
    pub listen: Option<SocketAddr>,
    /// Address of the TLS listener (embedded mode, when configured).
    pub tls_listen: Option<SocketAddr>,
    /// Counts of refused logins, for `/metrics`.
    pub metrics: Arc<BrokerMetrics>,
}

impl BrokerHandle {
    pub(crate) fn new(
        (inbound, config_reports): (mpsc::Receiver<Inbound>, mpsc::Receiver<Inbound>),
        outbound: mpsc::Sender<Outbound>,
        listen: Option<SocketAddr>,
        tls_listen: Option<SocketAddr>,
        metrics: Arc<BrokerMetrics>,
    ) -> Self {
        BrokerHandle {
            inbound: Mutex::new(Some(inbound)),
            config_reports: Mutex::new(Some(config_reports)),
            outbound,
            listen,
            tls_listen,
            metrics,
        }
    }

    /// The inbound stream; it has one consumer (ingest), so this returns `None` the second time.
    pub fn take_inbound(&self) -> Option<mpsc::Receiver<Inbound>> {
        self.inbound.lock().ok()?.take()
    }

    /// The edges' configuration reports; one consumer (the fleet), `None` the second time.
    pub fn take_config_reports(&self) -> Option<mpsc::Receiver<Inbound>> {
        self.config_reports.lock().ok()?.take()
    }

    /// Where to queue publishes (acks).
    pub fn outbound(&self) -> mpsc::Sender<Outbound> {
        self.outbound.clone()
    }
}

/// Broker-level counters (the gate's refusals among them).
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    pub logins_accepted: AtomicU64,
    pub logins_refused: AtomicU64,
    /// CONNECT with a client id other than the username, or one of the hub's.
    pub refused_client_id: AtomicU64,
    /// CONNECT with a will the principal may not publish.
    pub refused_will: AtomicU64,
    /// Not MQTT 3.1.1, or a malformed frame.
    pub refused_protocol: AtomicU64,
    pub refused_subscribe: AtomicU64,
    pub refused_publish: AtomicU64,
    /// Connections refused because `broker.max_connections` were open.
    pub refused_connection_cap: AtomicU64,
    /// Open connections closed because their credentials were revoked or re-issued.
    pub closed_revoked: AtomicU64,
    /// Connections open through the gate now.
    pub connections_open: AtomicU64,
}

impl BrokerMetrics {
    /// Appends Prometheus text exposition of the broker counters.
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP wangge_broker_logins_total MQTT logins at the embedded broker by result.\n\
             # TYPE wangge_broker_logins_total counter\n\
             wangge_broker_logins_total{{result=\"accepted\"}} {}\n\
             wangge_broker_logins_total{{result=\"refused\"}} {}",
            self.logins_accepted.load(Relaxed),
            self.logins_refused.load(Relaxed)
        );
        let refused = [
            ("client_id", self.refused_client_id.load(Relaxed)),
            ("will", self.refused_will.load(Relaxed)),
            ("protocol", self.refused_protocol.load(Relaxed)),
            ("subscribe", self.refused_subscribe.load(Relaxed)),
            ("publish", self.refused_publish.load(Relaxed)),
            ("connection_cap", self.refused_connection_cap.load(Relaxed)),
        ];
        crate::prometheus::by_label(
            out,
            "wangge_broker_refused_total",
            "counter",
            "What the broker gate refused, by kind.",
            "what",
            refused,
        );
        let _ = writeln!(
            out,
            "# HELP wangge_broker_connections_closed_total Open MQTT connections the gate closed.\n\
             # TYPE wangge_broker_connections_closed_total counter\n\
             wangge_broker_connections_closed_total{{reason=\"revoked\"}} {}\n\
             # HELP wangge_broker_connections MQTT connections open through the gate.\n\
             # TYPE wangge_broker_connections gauge\n\
             wangge_broker_connections {}",
            self.closed_revoked.load(Relaxed),
            self.connections_open.load(Relaxed)
        );
    }
}

/// Starts the configured broker (embedded rumqttd, or a link to an external one).
/// Must be called inside a tokio runtime (the external mode spawns a task).
pub fn start(
    cfg: &BrokerConfig,
    registry: Arc<dyn RegistryStore>,
) -> Result<BrokerHandle, BrokerError> {
    match cfg.mode {
        BrokerMode::Embedded => embedded::start(cfg, registry),
        BrokerMode::External => external::start(cfg, registry, None, None),
    }
}

/// A cluster member's broker link: an external broker, subscribed only to the batches and
/// status of the edges in `owned` (kept in step as leases move), on a clean session so a
/// restarted hub is not handed messages of edges it no longer owns.
pub fn start_for_edges(
    cfg: &BrokerConfig,
    registry: Arc<dyn RegistryStore>,
    owned: tokio::sync::watch::Receiver<Vec<String>>,
    peers: Arc<dyn mosquitto::HubAccounts>,
) -> Result<BrokerHandle, BrokerError> {
    match cfg.mode {
        BrokerMode::External => external::start(cfg, registry, Some(owned), Some(peers)),
        BrokerMode::Embedded => Err(BrokerError::Config(
            "cluster mode needs broker.mode = \"external\" (every hub a client of one broker)"
                .into(),
        )),
    }
}
