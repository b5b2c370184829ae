//! An MQTT broker inside the edge (rumqttd) for sites without one: sensors publish to the
//! edge box directly. The agent then subscribes to it like to any site broker, so there is
//! one ingest path to test.
//!
//! rumqttd 0.19 binds inside its own thread and only logs a bind failure, so the listen
//! address is checked (and port 0 resolved) first, and start-up waits until it accepts.

use crate::config::SiteBrokerSection;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Starts the broker; returns the address it listens on.
pub fn start(cfg: &SiteBrokerSection) -> anyhow::Result<SocketAddr> {
    let listen = {
        let l = TcpListener::bind(cfg.listen).map_err(|e| {
            anyhow::anyhow!(
                "site_broker.listen {}: {e} (fix: free the port or change site_broker.listen)",
                cfg.listen
            )
        })?;
        l.local_addr()?
    };
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
    let mut probe = listen;
    if probe.ip().is_unspecified() {
        probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    while TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_err() {
        if Instant::now() >= deadline {
            anyhow::bail!("embedded site broker did not start listening on {listen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(%listen, "embedded site broker listening");
    Ok(probe)
}
