//! Uplink to the hub: batches out of the buffer, sealed with the edge's MAC, published at
//! QoS 1; a reading leaves the buffer only when the hub's `Ack` for its batch arrives (a
//! broker PUBACK proves nothing about storage).
//!
//! Two tasks: the *link* owns the MQTT event loop (connect, backoff, acks in), the
//! *batcher* drives the in-flight window (≤ `inflight_batches_max` batches in memory; the
//! rest waits on disk), resends on reconnect and on ack timeout with the same (epoch, seq)
//! so the hub deduplicates, and publishes the retained status. The window's logic lives in
//! [`window::DeliveryWindow`] without I/O, so a simulation can drive the same code.

use crate::buffer::Buffer;
use crate::config::{Config, UplinkSection};
use crate::ingest::now_ns;
use crate::metrics::Metrics;
use protocol::uplink::{mac_key, topics, Ack, EdgeId, EdgeStatus};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, Transport};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use window::{AckEffect, DeliveryWindow};

pub mod window;

/// Largest MQTT packet either way: a 5000-reading batch is ~250 KB.
pub const PACKET_BYTES_MAX: usize = 1 << 20;
const LINK_EVENTS_CAPACITY: usize = 1024;

/// Uplink state others read (API, status).
#[derive(Debug, Default)]
pub struct UplinkShared {
    pub inflight_batches: AtomicU64,
    pub inflight_readings: AtomicU64,
    /// Oldest unacked reading's timestamp, ns (0: none).
    pub oldest_unacked_ns: AtomicI64,
}

/// MQTT options for the hub connection: credentials, TLS, last will. The client id is the edge
/// id: the hub's broker refuses any other (so no one can take over another edge's session).
pub fn mqtt_options(cfg: &Config, secret: &str) -> anyhow::Result<MqttOptions> {
    let id = &cfg.edge.id;
    let mut o = MqttOptions::new(id.clone(), &cfg.hub.host, cfg.hub.port);
    o.set_credentials(id.clone(), secret);
    o.set_keep_alive(Duration::from_secs(cfg.hub.keepalive_s.max(5)));
    o.set_clean_session(true);
    o.set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX);
    o.set_inflight(u16::try_from(cfg.uplink.inflight_batches_max.max(2) * 2).unwrap_or(u16::MAX));
    let offline = EdgeStatus {
        edge_id: EdgeId(id.clone()),
        online: false,
        version: env!("CARGO_PKG_VERSION").into(),
        epoch: 0,
        backlog_readings: 0,
        backlog_bytes: 0,
        oldest_unacked_ns: None,
        ts_ns: 0,
    };
    o.set_last_will(LastWill::new(
        topics::status(id),
        offline.seal(&mac_key(secret)),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(ca_file) = &cfg.hub.ca_file {
        let ca = std::fs::read(ca_file)
            .map_err(|e| anyhow::anyhow!("hub.ca_file {}: {e}", ca_file.display()))?;
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            },
        ));
    }
    Ok(o)
}

#[derive(Debug)]
enum LinkEvent {
    Connected,
    Disconnected,
    Ack(Ack),
}

/// Drives the hub connection; reports connects, disconnects and acks to the batcher.
async fn link_task(
    mut el: EventLoop,
    client: AsyncClient,
    acks_topic: String,
    tx: mpsc::Sender<LinkEvent>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                // Batches go out only once acks can come back: after the SUBACK.
                if let Err(e) = client.try_subscribe(acks_topic.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(error = %e, "subscribe to acks failed");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                metrics.uplink_connected.store(true, Relaxed);
                metrics.uplink_connects.fetch_add(1, Relaxed);
                tracing::info!("uplink connected");
                if tx.send(LinkEvent::Connected).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == acks_topic => {
                match Ack::decode(&p.payload) {
                    Ok(ack) => {
                        if tx.send(LinkEvent::Ack(ack)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => metrics.reject(e.reason(), &p.topic),
                }
            }
            Ok(_) => {}
            Err(e) => {
                if metrics.uplink_connected.swap(false, Relaxed) {
                    tracing::warn!(error = %e, "uplink disconnected");
                    if tx.send(LinkEvent::Disconnected).await.is_err() {
                        return;
                    }
                } else {
                    tracing::debug!(error = %e, "uplink connect failed");
                }
                // The batcher resends every unacked batch itself after reconnect; rumqttc's
                // own replay would only duplicate them.
                el.pending.clear();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub struct Uplink {
    pub shared: Arc<UplinkShared>,
}

/// Starts link and batcher tasks.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    cfg: &Config,
    secret: &str,
    buffer: Arc<Mutex<Buffer>>,
    metrics: Arc<Metrics>,
    durable: Arc<Notify>,
) -> anyhow::Result<Uplink> {
    let opts = mqtt_options(cfg, secret)?;
    let (client, el) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::channel(LINK_EVENTS_CAPACITY);
    let edge_id = cfg.edge.id.clone();
    tokio::spawn(link_task(
        el,
        client.clone(),
        topics::acks(&edge_id),
        tx,
        metrics.clone(),
    ));
    let shared = Arc::new(UplinkShared::default());
    let epoch = buffer.lock().map(|b| b.epoch()).unwrap_or(0);
    let key = mac_key(secret);
    let b = Batcher {
        client,
        edge_id: edge_id.clone(),
        window: DeliveryWindow::new(&edge_id, key, epoch, cfg.uplink.clone()),
        status_key: key,
        cfg: cfg.uplink.clone(),
        buffer,
        metrics,
        shared: shared.clone(),
        connected: false,
    };
    tokio::spawn(b.run(rx, durable));
    Ok(Uplink { shared })
}

struct Batcher {
    client: AsyncClient,
    edge_id: String,
    /// The delivery protocol itself (sans I/O); this task only carries its bytes.
    window: DeliveryWindow,
    /// Seals status messages (the hub counts only statuses tagged with this edge's key).
    status_key: [u8; 32],
    cfg: UplinkSection,
    buffer: Arc<Mutex<Buffer>>,
    metrics: Arc<Metrics>,
    shared: Arc<UplinkShared>,
    connected: bool,
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<LinkEvent>, durable: Arc<Notify>) {
        let tick_ms = (self.cfg.batch_age_ms / 4).clamp(5, 50);
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status =
            tokio::time::interval(Duration::from_millis(self.cfg.status_interval_ms.max(100)));
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    None => return,
                    Some(LinkEvent::Connected) => {
                        self.connected = true;
                        self.publish_status();
                        // Resend everything unacked, same (epoch, seq): the hub dedups.
                        self.window.on_connected();
                    }
                    Some(LinkEvent::Disconnected) => self.connected = false,
                    Some(LinkEvent::Ack(ack)) => self.on_ack(ack),
                },
                _ = durable.notified() => {}
                _ = tick.tick() => {}
                _ = status.tick() => {
                    if self.connected {
                        self.publish_status();
                    }
                }
            }
            if self.connected {
                self.send_due();
                self.fill();
            }
            self.update_shared();
        }
    }

    fn on_ack(&mut self, ack: Ack) {
        let Ok(mut b) = self.buffer.lock() else {
            return;
        };
        let (effect, errors) = self.window.on_ack(ack, &mut b);
        drop(b);
        match effect {
            AckEffect::Acked { readings, gaps, .. } => {
                self.metrics.batches_acked.fetch_add(1, Relaxed);
                self.metrics.readings_out.fetch_add(readings, Relaxed);
                self.metrics.gaps_reported.fetch_add(gaps, Relaxed);
            }
            AckEffect::Unexpected => {
                self.metrics.acks_unexpected.fetch_add(1, Relaxed);
            }
        }
        for e in errors {
            self.metrics.buffer_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "buffer ack failed");
        }
    }

    /// Publishes batches never sent, or sent longer than `ack_timeout_ms` ago.
    fn send_due(&mut self) {
        let topic = topics::batches(&self.edge_id);
        let now = Instant::now();
        for d in self.window.due(now) {
            match self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, d.sealed)
            {
                Ok(()) => {
                    if d.resend {
                        self.metrics.batches_resent.fetch_add(1, Relaxed);
                    } else {
                        self.metrics.batches_sent.fetch_add(1, Relaxed);
                    }
                    self.window.mark_sent(d.seq, now);
                }
                // The client's request queue is full: try again on the next tick.
                Err(_) => break,
            }
        }
    }

    /// Takes new batches from the buffer while the window has room.
    fn fill(&mut self) {
        loop {
            let Ok(mut b) = self.buffer.lock() else {
                return;
            };
            let taken = match self.window.take_batch(&mut b, Instant::now()) {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    self.metrics.buffer_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "buffer read failed");
                    return;
                }
            };
            drop(b);
            self.window.push(taken);
            self.send_due();
        }
    }

    fn update_shared(&self) {
        let s = &self.shared;
        s.inflight_batches
            .store(self.window.inflight().count() as u64, Relaxed);
        s.inflight_readings
            .store(self.window.inflight().map(|f| f.readings).sum(), Relaxed);
        let oldest = self.window.inflight().map(|f| f.min_ts).min();
        s.oldest_unacked_ns.store(oldest.unwrap_or(0), Relaxed);
    }

    fn publish_status(&self) {
        let (stats, peek) = match self.buffer.lock() {
            Ok(mut b) => (b.stats(), b.peek_ts()),
            Err(_) => return,
        };
        let inflight_min = self.window.inflight().map(|f| f.min_ts).min();
        let oldest = match (inflight_min, peek) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let st = EdgeStatus {
            edge_id: EdgeId(self.edge_id.clone()),
            online: true,
            version: env!("CARGO_PKG_VERSION").into(),
            epoch: self.window.epoch(),
            backlog_readings: stats.records_unacked,
            backlog_bytes: stats.bytes,
            oldest_unacked_ns: oldest,
            ts_ns: now_ns(),
        };
        let _ = self.client.try_publish(
            topics::status(&self.edge_id),
            QoS::AtLeastOnce,
            true,
            st.seal(&self.status_key),
        );
    }
}
