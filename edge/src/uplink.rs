//! Uplink to the hub: batches out of the buffer, sealed with the edge's MAC, published at
//! QoS 1; a reading leaves the buffer only when the hub's `Ack` for its batch arrives (a
//! broker PUBACK proves nothing about storage).
//!
//! Two tasks: the *link* owns the MQTT event loop (connect, backoff, acks in), the
//! *batcher* owns the in-flight window (≤ `inflight_batches_max` batches in memory; the
//! rest waits on disk), resends on reconnect and on ack timeout with the same (epoch, seq)
//! so the hub deduplicates, and publishes the retained status.

use crate::buffer::{Buffer, Lane};
use crate::config::{Config, UplinkSection};
use crate::ingest::now_ns;
use crate::metrics::Metrics;
use protocol::uplink::{mac_key, topics, Ack, EdgeId, EdgeStatus, Gap, UplinkBatch};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, Transport};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

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

/// MQTT options for the hub connection: credentials, TLS, last will.
pub fn mqtt_options(
    cfg: &Config,
    secret: &str,
    client_suffix: &str,
) -> anyhow::Result<MqttOptions> {
    let id = &cfg.edge.id;
    let mut o = MqttOptions::new(format!("{id}{client_suffix}"), &cfg.hub.host, cfg.hub.port);
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
        offline.encode(),
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

struct InFlight {
    seq: u64,
    lane: Lane,
    end: u64,
    readings: u64,
    min_ts: i64,
    gaps: Vec<Gap>,
    sealed: bytes::Bytes,
    sent_at: Option<Instant>,
    acked: bool,
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
    let opts = mqtt_options(cfg, secret, "")?;
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
    let b = Batcher {
        client,
        edge_id,
        key: mac_key(secret),
        epoch,
        next_seq: 0,
        inflight: VecDeque::new(),
        cfg: cfg.uplink.clone(),
        buffer,
        metrics,
        shared: shared.clone(),
        connected: false,
        waiting_since: None,
    };
    tokio::spawn(b.run(rx, durable));
    Ok(Uplink { shared })
}

struct Batcher {
    client: AsyncClient,
    edge_id: String,
    key: [u8; 32],
    epoch: u64,
    next_seq: u64,
    inflight: VecDeque<InFlight>,
    cfg: UplinkSection,
    buffer: Arc<Mutex<Buffer>>,
    metrics: Arc<Metrics>,
    shared: Arc<UplinkShared>,
    connected: bool,
    /// When normal-lane readings started waiting for a partial batch.
    waiting_since: Option<Instant>,
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
                        for f in &mut self.inflight {
                            f.sent_at = None;
                        }
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
        if ack.epoch != self.epoch {
            self.metrics.acks_unexpected.fetch_add(1, Relaxed);
            return;
        }
        match self.inflight.iter_mut().find(|f| f.seq == ack.seq) {
            Some(f) if !f.acked => {
                f.acked = true;
                self.metrics.batches_acked.fetch_add(1, Relaxed);
                self.metrics.readings_out.fetch_add(f.readings, Relaxed);
                self.metrics
                    .gaps_reported
                    .fetch_add(f.gaps.len() as u64, Relaxed);
                if !f.gaps.is_empty() {
                    if let Ok(mut b) = self.buffer.lock() {
                        if let Err(e) = b.gaps_acked(f.seq) {
                            self.metrics.buffer_errors.fetch_add(1, Relaxed);
                            tracing::error!(error = %e, "persisting gaps failed");
                        }
                    }
                }
            }
            _ => {
                self.metrics.acks_unexpected.fetch_add(1, Relaxed);
                return;
            }
        }
        // The cursor of a lane moves only over a prefix of acked batches of that lane.
        for lane in Lane::ALL {
            while let Some(pos) = self.inflight.iter().position(|f| f.lane == lane) {
                if !self.inflight[pos].acked {
                    break;
                }
                let f = self.inflight.remove(pos).expect("position is valid");
                if let Ok(mut b) = self.buffer.lock() {
                    if let Err(e) = b.ack(lane, f.end) {
                        self.metrics.buffer_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "buffer ack failed");
                    }
                }
            }
        }
    }

    /// Publishes batches never sent, or sent longer than `ack_timeout_ms` ago.
    fn send_due(&mut self) {
        let timeout = Duration::from_millis(self.cfg.ack_timeout_ms);
        let topic = topics::batches(&self.edge_id);
        for f in self.inflight.iter_mut().filter(|f| !f.acked) {
            let due = match f.sent_at {
                None => true,
                Some(t) => t.elapsed() >= timeout,
            };
            if !due {
                continue;
            }
            match self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, f.sealed.clone())
            {
                Ok(()) => {
                    if f.sent_at.is_some() {
                        self.metrics.batches_resent.fetch_add(1, Relaxed);
                    } else {
                        self.metrics.batches_sent.fetch_add(1, Relaxed);
                    }
                    f.sent_at = Some(Instant::now());
                }
                // The client's request queue is full: try again on the next tick.
                Err(_) => break,
            }
        }
    }

    /// Takes new batches from the buffer while the window has room.
    fn fill(&mut self) {
        while self.inflight.len() < self.cfg.inflight_batches_max {
            let Ok(mut b) = self.buffer.lock() else {
                return;
            };
            let urgent = b.unread(Lane::Urgent);
            let normal = b.unread(Lane::Normal);
            if urgent == 0 && normal == 0 {
                self.waiting_since = None;
                return;
            }
            if urgent == 0 && (normal as usize) < self.cfg.batch_readings_max {
                let since = *self.waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() < Duration::from_millis(self.cfg.batch_age_ms) {
                    return;
                }
            }
            let taken = match b.take(self.cfg.batch_readings_max) {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    self.metrics.buffer_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "buffer read failed");
                    return;
                }
            };
            let gaps = b.take_gaps(self.next_seq);
            drop(b);
            if taken.lane == Lane::Normal {
                self.waiting_since = None;
            }
            let batch = UplinkBatch {
                edge_id: EdgeId(self.edge_id.clone()),
                epoch: self.epoch,
                seq: self.next_seq,
                readings: taken.readings,
                gaps,
            };
            self.next_seq += 1;
            let min_ts = batch.readings.iter().map(|r| r.ts_ns).min().unwrap_or(0);
            self.inflight.push_back(InFlight {
                seq: batch.seq,
                lane: taken.lane,
                end: taken.end,
                readings: batch.readings.len() as u64,
                min_ts,
                sealed: batch.seal(&self.key).into(),
                gaps: batch.gaps,
                sent_at: None,
                acked: false,
            });
            self.send_due();
        }
    }

    fn update_shared(&self) {
        let s = &self.shared;
        s.inflight_batches
            .store(self.inflight.len() as u64, Relaxed);
        s.inflight_readings
            .store(self.inflight.iter().map(|f| f.readings).sum(), Relaxed);
        let oldest = self.inflight.iter().map(|f| f.min_ts).min();
        s.oldest_unacked_ns.store(oldest.unwrap_or(0), Relaxed);
    }

    fn publish_status(&self) {
        let (stats, peek) = match self.buffer.lock() {
            Ok(mut b) => (b.stats(), b.peek_ts()),
            Err(_) => return,
        };
        let inflight_min = self.inflight.iter().map(|f| f.min_ts).min();
        let oldest = match (inflight_min, peek) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let st = EdgeStatus {
            edge_id: EdgeId(self.edge_id.clone()),
            online: true,
            version: env!("CARGO_PKG_VERSION").into(),
            epoch: self.epoch,
            backlog_readings: stats.records_unacked,
            backlog_bytes: stats.bytes,
            oldest_unacked_ns: oldest,
            ts_ns: now_ns(),
        };
        let _ = self.client.try_publish(
            topics::status(&self.edge_id),
            QoS::AtLeastOnce,
            true,
            st.encode(),
        );
    }
}
