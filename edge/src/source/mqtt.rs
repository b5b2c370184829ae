//! Subscribes to a site broker and hands every message to the ingest path.

use super::Backoff;
use crate::config::MqttSource;
use crate::ingest::Ingest;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Largest sensor message accepted (a gateway message with many items is a few KB).
pub const MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// Connection options; `secret` is used when `use_hub_credentials` is set.
pub fn options(src: &MqttSource, edge_id: &str, secret: Option<&str>) -> MqttOptions {
    let mut o = MqttOptions::new(
        format!("{edge_id}-src-{}{}", src.name, std::process::id() % 100_000),
        &src.host,
        src.port,
    );
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(true);
    o.set_max_packet_size(MESSAGE_BYTES_MAX, 64 * 1024);
    if let (true, Some(secret)) = (src.use_hub_credentials, secret) {
        o.set_credentials(edge_id, secret);
    } else if let (Some(u), Some(p)) = (&src.username, &src.password) {
        o.set_credentials(u.clone(), p.clone());
    }
    o
}

/// Runs forever: connect, subscribe (again after every reconnect), ingest.
pub async fn run(
    src: MqttSource,
    edge_id: String,
    secret: String,
    topics: Vec<String>,
    ingest: Arc<Ingest>,
) {
    let metrics = ingest.metrics.source(&src.name, "mqtt");
    let (client, mut el) = AsyncClient::new(options(&src, &edge_id, Some(&secret)), 64);
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(src.reconnect_backoff_max_ms),
    );
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                metrics.up.store(true, Relaxed);
                tracing::info!(source = %src.name, "site broker connected");
                for t in &topics {
                    if let Err(e) = client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(source = %src.name, topic = %t, error = %e, "subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                ingest.mqtt_message(&metrics, &p.topic, &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                if metrics.up.swap(false, Relaxed) {
                    tracing::warn!(source = %src.name, error = %e, "site broker lost");
                }
                metrics.reconnects.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.step()).await;
            }
        }
    }
}
