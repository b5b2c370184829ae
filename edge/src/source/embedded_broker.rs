//! An MQTT broker inside the edge (rumqttd) for sites without one: sensors publish to the
//! edge box directly. The agent then subscribes to it like to any site broker, so there is
//! one ingest path to test.
//!
//! rumqttd 0.19 binds inside its own thread and only logs a bind failure; it listens on a
//! loopback port of its own, and sensors connect to `site_broker.listen`, where the front door
//! ([`super::site_front`]) admits clients with an empty client id and relays. Start-up waits
//! until rumqttd accepts.

use crate::config::SiteBrokerSection;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Starts the broker and its front door on `site_broker.listen`; returns the loopback address
/// of the broker itself, for the edge's own subscriber. Must run inside the tokio runtime.
pub fn start(cfg: &SiteBrokerSection) -> anyhow::Result<SocketAddr> {
    let front = TcpListener::bind(cfg.listen).map_err(|e| {
        anyhow::anyhow!(
            "site_broker.listen {}: {e} (fix: free the port or change site_broker.listen)",
            cfg.listen
        )
    })?;
    let front_addr = front.local_addr()?;
    let listen = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let auth = match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => Some(HashMap::from([(u.clone(), p.clone())])),
        _ => None,
    };
    let mut servers = HashMap::new();
    servers.insert(
        "site".to_string(),
        ServerSettings {
            name: "wangge-edge-site".into(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 10_000,
                max_payload_size: cfg.max_payload_bytes,
                max_inflight_count: 100,
                auth,
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            // Bounded: 4 × 8 MiB of messages per filter (kept in memory until segments roll over).
            max_segment_size: 8 << 20,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(servers),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("site-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded site broker stopped");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() >= deadline {
            anyhow::bail!("embedded site broker did not start listening on {listen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    front.set_nonblocking(true)?;
    let front = tokio::net::TcpListener::from_std(front)?;
    // The CONNECT may carry a will as large as a message, plus its header and login.
    let max_frame = cfg.max_payload_bytes + 64 * 1024;
    tokio::spawn(super::site_front::serve(front, listen, max_frame));
    tracing::info!(listen = %front_addr, broker = %listen, "embedded site broker listening");
    Ok(listen)
}
