//! The embedded rumqttd broker, behind the gate.
//!
//! rumqttd 0.19 facts this module is built on (read from its source):
//! - `ConnectionSettings::external_auth` takes a closure `(client_id, username, password) -> bool`
//!   called on every CONNECT. rumqttd has no per-topic ACL, so it listens on loopback only and
//!   admits only connections the gate ([`super::gate`]) opened: their password is the gate's
//!   per-process proof for the client id. The gate owns the public listeners (plain and TLS),
//!   authenticates against the registry and enforces the topic rules.
//! - `Broker::start` blocks forever and binds its listeners inside its own threads, so a bind
//!   failure is only logged. We therefore resolve port 0 to a free port first and wait until the
//!   listener accepts connections before returning.
//! - The in-process link (`Broker::link`) subscribes at QoS 0 and publishes at QoS 0. Acks reach
//!   the edge at QoS 0; a lost ack only makes the edge resend, and a resent batch is acked as a
//!   duplicate without being stored twice. Its client id (`wangge-hub-ingest`) is one nobody
//!   can take from outside: the gate refuses every client id starting with `wangge-hub`.
//! - A publish on a topic that matches no filter disconnects the publishing link, so the edge
//!   topics and `wangge/v1/events/#` are `initialized_filters`, and the hub's link refuses to
//!   publish anywhere else (it would lose every edge otherwise).

use super::gate::{Gate, GateSettings};
use super::{BrokerConfig, BrokerError, BrokerHandle, BrokerMetrics, Inbound, Outbound};
use crate::registry::RegistryStore;
use protocol::uplink::topics;
use rumqttd::{Broker, Config, ConnectionSettings, Notification, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Filter for the acks the hub publishes (must exist before the first ack, see module doc).
const ALL_ACKS: &str = "wangge/v1/edges/+/acks";
/// Filter for the desired configurations the hub publishes (retained, `crate::fleet`).
const ALL_CONFIGS: &str = "wangge/v1/edges/+/config";
/// Filter for the events the hub publishes (`wangge/v1/events/{department}/{type}`).
const ALL_EVENTS: &str = "wangge/v1/events/#";

/// True if the hub's own link may publish on `topic`: only topics under an initialized filter.
/// rumqttd's router treats a publish that matches no filter as failed and disconnects the
/// publishing connection (`append_to_commitlog` → `handle_disconnection`); the hub's link also
/// receives every batch, so anything else is dropped and logged instead (defensive: the test
/// `hub_publishes_on_other_topics_do_not_cut_the_edges_off` did not observe the disconnect).
fn publishable(topic: &str) -> bool {
    topic.starts_with("wangge/v1/events/")
        || super::is_config(topic)
        || (topics::edge_of(topic).is_some()
            && topic.ends_with("/acks")
            && topic.matches('/').count() == 4)
}

/// Segment size of the logs of small messages (acks, edge status), bytes. rumqttd counts only
/// topic + payload against a segment (≈ 60 bytes for an ack) while each stored message costs
/// ≈ 300 bytes of memory (its `PublishData`); with the batches' 8 MiB segments (then) the ack logs
/// would hold 130 000 acks per segment and grow for hours. 64 KiB ≈ 1 000 acks per segment,
/// ≈ 4 000 per filter (≈ 1.3 MiB of memory): far more than the ≤ 16 acks an edge waits for.
const SMALL_SEGMENT_BYTES: usize = 64 << 10;
/// Segment size of the events log (`wangge/v1/events/#`), bytes: events are ≈ 1 KiB and rare;
/// MQTT subscribers that fall behind by more than ≈ 1 000 events miss the oldest (the SSE
/// stream and webhooks are the durable, resumable deliveries).
const EVENTS_SEGMENT_BYTES: usize = 256 << 10;
/// Segments kept per filter of the small logs (the active one included).
const SMALL_SEGMENTS_MAX: usize = 4;

/// How long `start` waits for the listeners to accept connections.
const LISTEN_WAIT_MS: u64 = 10_000;
/// Outbound (ack) queue capacity, messages.
const OUTBOUND_QUEUE_MAX: usize = 4096;

pub(super) fn start(
    cfg: &BrokerConfig,
    registry: Arc<dyn RegistryStore>,
) -> Result<BrokerHandle, BrokerError> {
    check_sizes(cfg)?;
    let metrics = Arc::new(BrokerMetrics::default());
    let internal_key: [u8; 32] = rand::random();
    let internal = resolve_port(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let mut servers = HashMap::new();
    servers.insert(
        "internal".to_string(),
        server_settings("wangge-mqtt-internal", internal, cfg, internal_key),
    );
    let tls_acceptor = match &cfg.tls {
        Some(tls) => Some(
            crate::tls::acceptor("broker.tls", &tls.cert_path, &tls.key_path)
                .map_err(BrokerError::Config)?,
        ),
        None => None,
    };
    let plain = if cfg.tls.is_none() || cfg.keep_plain {
        Some(bind(cfg.listen)?)
    } else {
        None
    };
    let tls_listener = match &cfg.tls {
        Some(tls) => Some(bind(tls.listen)?),
        None => None,
    };
    let listen = plain.as_ref().and_then(|l| l.local_addr().ok());
    let tls_listen = tls_listener.as_ref().and_then(|l| l.local_addr().ok());
    let config = broker_config(cfg, servers);

    let mut broker = Broker::new(config);
    let (mut link_tx, link_rx) = broker
        .link("wangge-hub-ingest")
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    for filter in [
        topics::ALL_BATCHES,
        topics::ALL_STATUS,
        topics::ALL_CONFIG_REPORTS,
    ] {
        link_tx
            .subscribe(filter)
            .map_err(|e| BrokerError::Link(e.to_string()))?;
    }
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Link(e.to_string()))?;

    let (in_tx, in_rx) = mpsc::channel::<Inbound>(cfg.inbound_queue_max);
    let (reports_tx, reports_rx) = mpsc::channel::<Inbound>(super::CONFIG_REPORTS_QUEUE_MAX);
    spawn_link_rx(link_rx, in_tx, reports_tx)?;

    let (out_tx, out_rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE_MAX);
    spawn_link_tx(link_tx, out_rx)?;

    wait_listening(internal)?;
    let gate = Gate::new(
        registry,
        internal,
        internal_key,
        GateSettings {
            max_payload_bytes: cfg.max_payload_bytes,
            max_connections: cfg.max_connections,
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms.into()),
            revocation_check: Duration::from_millis(cfg.revocation_check_ms.max(10)),
        },
        metrics.clone(),
    );
    for (listener, acceptor) in [(plain, None), (tls_listener, tls_acceptor)] {
        if let Some(l) = listener {
            let l = tokio::net::TcpListener::from_std(l).map_err(|source| BrokerError::Listen {
                addr: cfg.listen,
                source,
            })?;
            tokio::spawn(gate.clone().serve(l, acceptor));
        }
    }
    tokio::spawn(gate.watch_revocations());
    if tls_listen.is_some() && listen.is_none() {
        tracing::info!("plain MQTT listener off: TLS is configured (broker.keep_plain = false)");
    }
    tracing::info!(?listen, ?tls_listen, %internal, "embedded MQTT broker listening behind the gate");
    Ok(BrokerHandle::new(
        (in_rx, reports_rx),
        out_tx,
        listen,
        tls_listen,
        metrics,
    ))
}

/// Refuses sizes the embedded broker cannot run with.
fn check_sizes(cfg: &BrokerConfig) -> Result<(), BrokerError> {
    if cfg.max_payload_bytes == 0 || cfg.inbound_queue_max == 0 {
        return Err(BrokerError::Config(
            "max_payload_bytes and inbound_queue_max must be > 0".into(),
        ));
    }
    // rumqttd panics on a segment under 1 KiB or zero segments.
    if cfg.router_segment_bytes_max < 1024 || cfg.router_segments_max == 0 {
        return Err(BrokerError::Config(
            "broker.router_segment_bytes_max must be >= 1024 and router_segments_max > 0".into(),
        ));
    }
    Ok(())
}

/// The rumqttd configuration: the router's limits and filters, and the internal server.
fn broker_config(cfg: &BrokerConfig, servers: HashMap<String, ServerSettings>) -> Config {
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            // The router keeps each filter's data in memory segments, read or not, until they
            // roll over: a cache that fills, then stays (see `BrokerConfig::
            // router_segment_bytes_max`). The batches log takes the configured size; the logs of
            // small messages get small segments (`small_logs`), because rumqttd's accounting
            // ignores the ≈ 300 bytes each stored message costs beyond its topic and payload.
            max_segment_size: cfg.router_segment_bytes_max,
            max_segment_count: cfg.router_segments_max,
            custom_segment: Some(small_logs()),
            initialized_filters: Some(vec![
                topics::ALL_BATCHES.to_string(),
                topics::ALL_STATUS.to_string(),
                ALL_ACKS.to_string(),
                // Configuration from the hub (`crate::fleet`).
                ALL_CONFIGS.to_string(),
                topics::ALL_CONFIG_REPORTS.to_string(),
                // Events the hub publishes (`wangge_events::delivery::run_mqtt`).
                ALL_EVENTS.to_string(),
            ]),
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(servers),
        ..Default::default()
    }
}

/// Forwards what the hub's link receives to ingest (`in_tx`), configuration reports to the
/// fleet (`reports_tx`), on its own thread.
fn spawn_link_rx(
    mut link_rx: rumqttd::local::LinkRx,
    in_tx: mpsc::Sender<Inbound>,
    reports_tx: mpsc::Sender<Inbound>,
) -> Result<(), BrokerError> {
    std::thread::Builder::new()
        .name("broker-link-rx".into())
        .spawn(move || loop {
            match link_rx.recv() {
                Ok(Some(Notification::Forward(f))) => {
                    let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                    let msg = Inbound {
                        topic,
                        payload: f.publish.payload,
                    };
                    if super::is_config_report(&msg.topic) {
                        super::forward_config_report(&reports_tx, msg);
                        continue;
                    }
                    if in_tx.blocking_send(msg).is_err() {
                        return; // ingest is gone
                    }
                }
                Ok(Some(Notification::Unschedule)) => {
                    // The router paused us because our buffer was full; we drained it.
                    if link_rx.ready().is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "embedded broker link closed");
                    return;
                }
            }
        })
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    Ok(())
}

/// Publishes what the hub sends (`out_rx`) through its link, on its own thread.
fn spawn_link_tx(
    mut link_tx: rumqttd::local::LinkTx,
    mut out_rx: mpsc::Receiver<Outbound>,
) -> Result<(), BrokerError> {
    std::thread::Builder::new()
        .name("broker-link-tx".into())
        .spawn(move || {
            while let Some(m) = out_rx.blocking_recv() {
                if !publishable(&m.topic) {
                    tracing::error!(topic = %m.topic, "hub publish on a topic outside its filters dropped");
                    continue;
                }
                let sent = if super::is_config(&m.topic) {
                    // Retained: rumqttd's local link has no retained `publish`, its raw `send`
                    // does (it only queues the packet, it never waits).
                    let p = rumqttd::protocol::Publish::new(m.topic.into(), m.payload, true);
                    futures::executor::block_on(
                        link_tx.send(rumqttd::protocol::Packet::Publish(p, None)),
                    )
                } else {
                    link_tx.publish(m.topic, m.payload)
                };
                if let Err(e) = sent {
                    tracing::error!(error = %e, "embedded broker link closed");
                    return;
                }
            }
        })
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    Ok(())
}

/// Segment bounds of the filters that carry small messages. rumqttd applies an entry to every
/// filter it matches, so `wangge/v1/edges/+/acks` also bounds each edge's own ack filter
/// (`wangge/v1/edges/{id}/acks`, created when the edge subscribes; every ack is stored in both).
fn small_logs() -> HashMap<String, rumqttd::SegmentConfig> {
    let small = |bytes| rumqttd::SegmentConfig {
        max_segment_size: bytes,
        max_segment_count: SMALL_SEGMENTS_MAX,
    };
    HashMap::from([
        (ALL_ACKS.to_string(), small(SMALL_SEGMENT_BYTES)),
        (topics::ALL_STATUS.to_string(), small(SMALL_SEGMENT_BYTES)),
        (
            topics::ALL_CONFIG_REPORTS.to_string(),
            small(SMALL_SEGMENT_BYTES),
        ),
        (ALL_CONFIGS.to_string(), small(EVENTS_SEGMENT_BYTES)),
        (ALL_EVENTS.to_string(), small(EVENTS_SEGMENT_BYTES)),
    ])
}

/// The loopback listener of rumqttd: it admits only the gate's connections (their password is
/// the gate's proof for their client id; see [`Gate::internal_proof`]).
fn server_settings(
    name: &str,
    listen: SocketAddr,
    cfg: &BrokerConfig,
    internal_key: [u8; 32],
) -> ServerSettings {
    let auth = move |client_id: String, username: String, password: String| -> bool {
        username == client_id
            && constant_time_eq(
                password.as_bytes(),
                Gate::internal_proof(&internal_key, &client_id).as_bytes(),
            )
    };
    ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: cfg.connect_timeout_ms,
            max_payload_size: cfg.max_payload_bytes,
            max_inflight_count: cfg.max_inflight_count,
            auth: None,
            external_auth: Some(Arc::new(auth)),
            dynamic_filters: true,
        },
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds a public listener now, so a taken port fails `hub serve` with its address.
fn bind(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    let l = TcpListener::bind(addr).map_err(|source| BrokerError::Listen { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| BrokerError::Listen { addr, source })?;
    Ok(l)
}

/// rumqttd binds inside its own thread and cannot report the port it got, so port 0 is
/// resolved here to a port that was free a moment ago.
fn resolve_port(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let l = TcpListener::bind(addr).map_err(|source| BrokerError::Listen { addr, source })?;
    l.local_addr()
        .map_err(|source| BrokerError::Listen { addr, source })
}

fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let deadline = Instant::now() + Duration::from_millis(LISTEN_WAIT_MS);
    loop {
        match TcpStream::connect_timeout(&probe, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(BrokerError::Listen { addr, source: e })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hub_link_publishes_only_under_its_filters() {
        assert!(super::publishable("wangge/v1/edges/edge-1/acks"));
        assert!(super::publishable(
            "wangge/v1/events/water/manhole.displaced"
        ));
        assert!(super::publishable("wangge/v1/edges/edge-1/config"));
        assert!(!super::publishable("wangge/v1/edges/edge-1/config-report"));
        assert!(!super::publishable("wangge/v1/edges/edge-1/batches"));
        assert!(!super::publishable("wangge/v1/edges/a/b/acks"));
        assert!(!super::publishable("other/topic"));
    }

    /// rumqttd picks a filter's segment bounds with `matches(filter, pattern)`; the bound on
    /// memory relies on each edge's own ack filter matching the small-log pattern and on the
    /// batches log keeping the configured size.
    #[test]
    fn ack_status_and_event_logs_get_small_segments_and_batches_the_configured_ones() {
        let logs = super::small_logs();
        let segment_of = |filter: &str| -> Vec<usize> {
            logs.iter()
                .filter(|(pattern, _)| rumqttd::protocol::matches(filter, pattern))
                .map(|(_, c)| c.max_segment_size)
                .collect()
        };
        let small = vec![super::SMALL_SEGMENT_BYTES];
        assert_eq!(segment_of("wangge/v1/edges/edge-1/acks"), small);
        assert_eq!(segment_of(super::ALL_ACKS), small);
        assert_eq!(segment_of(protocol::uplink::topics::ALL_STATUS), small);
        assert_eq!(
            segment_of(super::ALL_EVENTS),
            vec![super::EVENTS_SEGMENT_BYTES]
        );
        assert!(segment_of(protocol::uplink::topics::ALL_BATCHES).is_empty());
    }
}
