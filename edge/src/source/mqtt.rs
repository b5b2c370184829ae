//! Subscribes to a site broker and hands every message to the ingest path.

use super::Backoff;
use crate::config::MqttSource;
use crate::ingest::Ingest;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages received and not yet acknowledged to the broker (waiting for group commit).
const ACKS_PENDING_MAX: usize = 65_536;

/// Acknowledges each QoS 1 message to the site broker only once every reading ingested up
/// to it is durable, so a crash before the fdatasync makes the broker redeliver instead of
/// losing it (a redelivery is dropped as a duplicate (sensor, seq) if it was kept after all).
async fn ack_when_durable(
    client: AsyncClient,
    ingest: Arc<Ingest>,
    mut rx: mpsc::Receiver<(u64, Publish)>,
) {
    let mut durable = ingest.durable();
    let mut waiting = Waiting {
        ingest: ingest.clone(),
        messages: Default::default(),
    };
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    ingest.drain.waiting(1);
                    waiting.messages.push_back(m);
                }
                None => return,
            },
            r = durable.changed() => if r.is_err() { return },
        }
        let upto = *durable.borrow();
        while waiting
            .messages
            .front()
            .is_some_and(|(mark, _)| *mark <= upto)
        {
            let (_, p) = waiting.messages.pop_front().expect("front exists");
            ingest.drain.done(1);
            if client.ack(&p).await.is_err() {
                return;
            }
        }
    }
}

/// The messages an ack task holds; counted in [`crate::ingest::Drain`] until PUBACKed, and
/// uncounted when the task ends or is aborted (its source restarted) with some still held.
struct Waiting {
    ingest: Arc<Ingest>,
    messages: std::collections::VecDeque<(u64, Publish)>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.ingest.drain.done(self.messages.len() as u64);
    }
}

/// Largest sensor message accepted (a gateway message with many items is a few KB); larger
/// ones are received, counted as `too_large` and acknowledged, never ingested.
pub const MESSAGE_BYTES_MAX: usize = 256 * 1024;
/// Largest MQTT packet the client reads at all. A bigger one breaks the connection; because the
/// session is persistent the broker would redeliver it forever, so the next connect discards
/// the session once (see `run`). Site brokers should cap messages (mosquitto
/// `message_size_limit`) well below this.
pub const PACKET_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Connection options; `secret` is used when `use_hub_credentials` is set.
pub fn options(src: &MqttSource, edge_id: &str, secret: Option<&str>) -> MqttOptions {
    // A stable client id and a persistent session: after a crash or restart the broker
    // redelivers what was received but not yet PUBACKed (not yet durable here), and keeps QoS 1
    // messages published while the agent was down (within the broker's queue limits).
    let mut o = MqttOptions::new(format!("{edge_id}-src-{}", src.name), &src.host, src.port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(false);
    o.set_max_packet_size(PACKET_BYTES_MAX, 64 * 1024);
    // PUBACK only once the message's readings are durable (see `run`).
    o.set_manual_acks(true);
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
    let (ack_tx, ack_rx) = mpsc::channel(ACKS_PENDING_MAX);
    tokio::spawn(ack_when_durable(client.clone(), ingest.clone(), ack_rx));
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(src.reconnect_backoff_max_ms),
    );
    // Set after a packet too large to read: the next connect starts a clean session to drop it
    // (a persistent session would redeliver it forever), then the persistent one is restored.
    let mut purging = false;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) if purging => {
                purging = false;
                el.mqtt_options.set_clean_session(false);
                tracing::warn!(source = %src.name,
                    "site session discarded to drop an oversized message; reconnecting persistent");
                let _ = client.try_disconnect();
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                tracing::info!(source = %src.name, "site broker connected");
                for t in &topics {
                    if let Err(e) = client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(source = %src.name, topic = %t, error = %e, "subscribe failed");
                    }
                }
            }
            // "Up" means receiving: only once the broker confirmed the subscriptions.
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                metrics.up.store(true, Relaxed);
            }
            // Draining before a restart: not taken, not acked; the broker redelivers it to
            // the next process.
            Ok(Event::Incoming(Packet::Publish(_))) if ingest.drain.stopping() => {}
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.payload.len() > MESSAGE_BYTES_MAX {
                    ingest.metrics.reject("too_large", &p.topic);
                } else {
                    ingest.mqtt_message(&metrics, &p.topic, &p.payload);
                }
                if p.qos != QoS::AtMostOnce {
                    let token = Publish {
                        payload: bytes::Bytes::new(),
                        ..p
                    };
                    // Bounded: when full, stop reading the broker until acks catch up.
                    if ack_tx.send((ingest.mark(), token)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if matches!(
                    &e,
                    rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                        rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
                    ))
                ) {
                    ingest.metrics.reject("too_large", &src.name);
                    purging = true;
                    el.mqtt_options.set_clean_session(true);
                }
                if metrics.up.swap(false, Relaxed) {
                    tracing::warn!(source = %src.name, error = %e, "site broker lost");
                }
                metrics.reconnects.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.step()).await;
            }
        }
    }
}
