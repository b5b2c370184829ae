//! Uplink to the hub: batches out of the buffer, sealed with the edge's MAC, published at
//! QoS 1; a reading leaves the buffer only when the hub's `Ack` for its batch arrives (a
//! broker PUBACK proves nothing about storage).
//!
//! Two tasks: the *link* owns the MQTT event loop (connect, backoff, acks in), the
//! *batcher* drives the in-flight window (≤ `inflight_batches_max` batches in memory; the
//! rest waits on disk), resends on reconnect and on ack timeout with the same (epoch, seq)
//! so the hub deduplicates, and publishes the retained status. The window's logic lives in
//! [`window::DeliveryWindow`] without I/O, so a simulation can drive the same code.
//!
//! Acks are trusted only if sealed by the hub under this edge's key and naming this edge
//! ([`Ack::open`]), and only for an (epoch, seq) in flight; anything else is ignored and
//! counted in `edge_acks_rejected_total{reason}`.
//!
//! Statuses carry a counter for the hub's replay check: at each connect the link arms a last
//! will (offline, counter c), then the batcher's online statuses count on from c + 1 and name
//! c as the will the hub may accept once (see `protocol/README.md`). Each online status
//! lists the sources that are down ([`crate::source::down`]); one goes out at once whenever
//! that set changes.

use crate::buffer::Buffer;
use crate::config::{Config, UplinkSection};
use crate::ingest::now_ns;
use crate::metrics::Metrics;
use crate::metrics::Metrics as EdgeMetrics;
use protocol::edge_config::DesiredConfig;
use protocol::uplink::{mac_key, topics, Ack, EdgeStatus, UplinkError, UPLINK_VERSION};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, SubscribeFilter, Transport,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
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

/// This edge's status counter within its epoch, shared by the link (which arms each
/// connection's last will) and the batcher (online statuses).
#[derive(Debug, Default)]
pub struct StatusClock {
    next: AtomicU64,
    /// The counter of the will armed for the current connection.
    will: AtomicU64,
}

impl StatusClock {
    fn tick(&self) -> u64 {
        self.next.fetch_add(1, Relaxed)
    }
}

/// The offline status this edge leaves as its last will, counter `counter` in `epoch`.
fn offline_status(edge_id: &str, epoch: u64, counter: u64) -> EdgeStatus {
    EdgeStatus::offline(edge_id, env!("CARGO_PKG_VERSION"), epoch, counter, now_ns())
}

/// Logs a warning per reason at most every `LOG_EVERY` (a flood of forged acks must not
/// flood the log), with how many were suppressed.
#[derive(Debug, Default)]
struct RateLimitedWarn {
    last: HashMap<&'static str, (Instant, u64)>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl RateLimitedWarn {
    fn warn(&mut self, reason: &'static str, detail: &str) {
        let now = Instant::now();
        let e = self.last.entry(reason).or_insert((now - LOG_EVERY, 0));
        if now.duration_since(e.0) >= LOG_EVERY {
            tracing::warn!(reason, suppressed = e.1, %detail, "ack ignored; the buffer keeps the batch");
            *e = (now, 0);
        } else {
            e.1 += 1;
        }
    }
}

/// Counts and logs an ack that does not open.
fn reject_ack(metrics: &EdgeMetrics, log: &mut RateLimitedWarn, e: UplinkError) {
    metrics.ack_rejected(e.reason());
    if let UplinkError::UnknownVersion(v) = e {
        if log
            .last
            .get("unknown_version")
            .is_none_or(|(t, _)| t.elapsed() >= LOG_EVERY)
        {
            tracing::error!(
                reason = "unknown_version",
                "the hub speaks protocol version {v}, this edge speaks {UPLINK_VERSION}: \
                 its acks are ignored and nothing leaves the buffer until one is upgraded"
            );
        }
    }
    log.warn(e.reason(), &e.to_string());
}

/// MQTT options for the hub connection: credentials, TLS. No last will: the uplink arms one
/// per connection ([`arm_will`]); `edge check` connects without one, so a check never marks
/// the edge offline. The client id is the edge id: the hub's broker refuses any other (so no
/// one can take over another edge's session).
pub fn mqtt_options(cfg: &Config, secret: &str) -> anyhow::Result<MqttOptions> {
    let id = &cfg.edge.id;
    let mut o = MqttOptions::new(id.clone(), &cfg.hub.host, cfg.hub.port);
    o.set_credentials(id.clone(), secret);
    o.set_keep_alive(Duration::from_secs(cfg.hub.keepalive_s.max(5)));
    o.set_clean_session(true);
    o.set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX);
    o.set_inflight(u16::try_from(cfg.uplink.inflight_batches_max.max(2) * 2).unwrap_or(u16::MAX));
    let ca = match (&cfg.hub.ca_pem, &cfg.hub.ca_file) {
        (Some(pem), _) => Some(pem.clone().into_bytes()),
        (None, Some(ca_file)) => Some(
            std::fs::read(ca_file)
                .map_err(|e| anyhow::anyhow!("hub.ca_file {}: {e}", ca_file.display()))?,
        ),
        (None, None) => None,
    };
    if let Some(ca) = ca {
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

/// What the link needs to open acks and arm wills.
struct LinkIdentity {
    edge_id: String,
    epoch: u64,
    key: [u8; 32],
    clock: Arc<StatusClock>,
    /// The newest desired configuration the hub sealed for this edge (the fleet manager
    /// applies it).
    configs: watch::Sender<Option<DesiredConfig>>,
}

impl LinkIdentity {
    /// Arms the last will of the next connection: a fresh counter, remembered for the online
    /// statuses that will announce it.
    fn arm_will(&self, opts: &mut MqttOptions) {
        let c = self.clock.tick();
        self.clock.will.store(c, Relaxed);
        opts.set_last_will(LastWill::new(
            topics::status(&self.edge_id),
            offline_status(&self.edge_id, self.epoch, c).seal(&self.key),
            QoS::AtLeastOnce,
            true,
        ));
    }
}

/// Drives the hub connection; reports connects, disconnects and acks to the batcher.
async fn link_task(
    mut el: EventLoop,
    client: AsyncClient,
    acks_topic: String,
    tx: mpsc::Sender<LinkEvent>,
    metrics: Arc<Metrics>,
    id: LinkIdentity,
) {
    let mut backoff = Duration::from_millis(100);
    let mut log = RateLimitedWarn::default();
    id.arm_will(&mut el.mqtt_options);
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                // Batches go out only once acks can come back: after the SUBACK. The hub's
                // desired configuration comes on the same subscription (retained).
                let filters = [acks_topic.clone(), topics::config(&id.edge_id)]
                    .map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
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
                match Ack::open(&p.payload, &id.key, &id.edge_id) {
                    Ok(ack) => {
                        if tx.send(LinkEvent::Ack(ack)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => reject_ack(&metrics, &mut log, e),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topics::config(&id.edge_id) => {
                match DesiredConfig::open(&p.payload, &id.key, &id.edge_id) {
                    Ok(c) => {
                        id.configs.send_replace(Some(c));
                    }
                    Err(e) => {
                        metrics.configs_rejected.fetch_add(1, Relaxed);
                        tracing::warn!(reason = e.reason(), "configuration from the hub ignored: it does not open under this edge's key");
                    }
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
                // The next connection gets a new will; the will of this one (if the broker
                // published it) is the one the last online status announced.
                id.arm_will(&mut el.mqtt_options);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub struct Uplink {
    pub shared: Arc<UplinkShared>,
    /// The hub connection's client (the fleet manager publishes its reports on it).
    pub client: AsyncClient,
    /// The newest desired configuration from the hub that opened under this edge's key.
    pub configs: watch::Receiver<Option<DesiredConfig>>,
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
    let epoch = buffer.lock().map(|b| b.epoch()).unwrap_or(0);
    let key = mac_key(secret);
    let clock = Arc::new(StatusClock::default());
    let (configs_tx, configs) = watch::channel(None);
    tokio::spawn(link_task(
        el,
        client.clone(),
        topics::acks(&edge_id),
        tx,
        metrics.clone(),
        LinkIdentity {
            edge_id: edge_id.clone(),
            epoch,
            key,
            clock: clock.clone(),
            configs: configs_tx,
        },
    ));
    let shared = Arc::new(UplinkShared::default());
    let b = Batcher {
        client: client.clone(),
        edge_id: edge_id.clone(),
        window: DeliveryWindow::new(&edge_id, key, epoch, cfg.uplink.clone()),
        status_key: key,
        cfg: cfg.uplink.clone(),
        buffer,
        metrics,
        shared: shared.clone(),
        connected: false,
        clock,
        log: RateLimitedWarn::default(),
    };
    tokio::spawn(b.run(rx, durable));
    Ok(Uplink {
        shared,
        client,
        configs,
    })
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
    clock: Arc<StatusClock>,
    log: RateLimitedWarn,
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<LinkEvent>, durable: Arc<Notify>) {
        let tick_ms = (self.cfg.batch_age_ms / 4).clamp(5, 50);
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status =
            tokio::time::interval(Duration::from_millis(self.cfg.status_interval_ms.max(100)));
        // A source going down or coming back is told at once, not on the next interval.
        let metrics = self.metrics.clone();
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
                _ = metrics.sources_down.changed.notified() => {
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
        let (ack_epoch, ack_seq) = (ack.epoch, ack.seq);
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
            // Sealed by the hub for us, but not for a batch in flight: a replay of an old ack
            // (or the hub's second answer to a resend). Ignored: the cursor does not move.
            AckEffect::Unexpected => {
                self.metrics.acks_unexpected.fetch_add(1, Relaxed);
                self.metrics.ack_rejected("replayed");
                let detail = format!("(epoch {}, seq {}) is not in flight", ack_epoch, ack_seq);
                self.log.warn("replayed", &detail);
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

    fn publish_status(&mut self) {
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
            sources_down: self.metrics.sources_down.snapshot(),
            backlog_readings: stats.records_unacked,
            backlog_bytes: stats.bytes,
            oldest_unacked_ns: oldest,
            ..EdgeStatus::online(
                &self.edge_id,
                env!("CARGO_PKG_VERSION"),
                self.window.epoch(),
                self.clock.tick(),
                self.clock.will.load(Relaxed),
                now_ns(),
            )
        };
        let _ = self.client.try_publish(
            topics::status(&self.edge_id),
            QoS::AtLeastOnce,
            true,
            st.seal(&self.status_key),
        );
    }
}
