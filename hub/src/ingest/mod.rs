//! Ingest: from a message on the broker to stored readings and an ack.
//!
//! For every uplink batch, in this order:
//! 1. decode (`UplinkBatch::open`), refuse if the topic's edge id differs from the batch's
//!    `edge_id` (`wrong_edge`), look up that edge's credentials (`unknown_edge`, `revoked`) and
//!    verify the HMAC with its key (`bad_mac`): all three must agree, so an edge can only publish
//!    as itself whatever the broker allows;
//! 2. dedup on (edge, epoch, seq) against the persisted [`dedup::DedupStore`];
//! 3. map each sensor to its component through the registry (cached), note unassigned sensors;
//! 4. write the readings to every sink; one write per sink covers a whole group of batches
//!    that were waiting (group commit: one fsync for many batches);
//! 5. record the batches as stored, then publish `Ack` on `wangge/v1/edges/{id}/acks`.
//!
//! If any sink fails, no batch of the group is acked: the edges keep and resend them.
//! Status messages go to `RegistryStore::record_edge_status`.
//!
//! The work runs on one dedicated thread (sinks and registry are synchronous; the batches of a
//! group must be stored before they are acked, so there is nothing to gain from more threads
//! on 2 cores, and one writer keeps SQLite free of lock contention).
//!
//! **Hook for the events engine**: [`IngestHandle::subscribe`] returns a
//! `tokio::sync::broadcast::Receiver<Arc<StoredGroup>>`: every group of readings once it is
//! stored in every sink (before its ack), readings sorted by timestamp. The channel is bounded
//! (`observer_queue_max` groups); a receiver that falls behind gets `RecvError::Lagged(n)` and
//! must recover (e.g. by querying the store for the missed interval); ingest never waits for it.

pub mod dedup;
pub mod metrics;

use crate::broker::{BrokerHandle, Inbound, Outbound};
use crate::registry::{RegistryStore, SensorAssignment};
use crate::timeseries::{StoredReading, TimeSeriesSink, TsError};
pub use metrics::{IngestMetrics, RejectReason, SinkStats};
use protocol::uplink::{topics, Ack, AckOutcome, EdgeStatus, UplinkBatch, UplinkError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Ingest settings (`[ingest]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Where `ingest.sqlite` (the dedup table) lives. Default `./data`.
    pub data_dir: PathBuf,
    /// Most batches stored in one group commit. Default 512. Groups form from what is already
    /// waiting, so they grow only when the store is the bottleneck; larger groups put more rows
    /// of each series on each touched page (benchmarked: 20k series, 25k-row groups 66k rows/s,
    /// 100k-row groups 190k rows/s).
    pub group_batches_max: usize,
    /// Most readings in one group commit. Default 200 000.
    pub group_readings_max: usize,
    /// A batch with more readings is refused (`oversize`). Default 10 000.
    pub max_readings_per_batch: usize,
    /// How long stored batch ids are remembered for dedup, days. Default 7.
    pub dedup_keep_days: u32,
    /// How long a sensor → component mapping is cached, ms. Default 60 000.
    pub assignment_cache_ms: u64,
    /// Most cached sensor mappings (the cache is cleared when full). Default 200 000.
    pub assignment_cache_max: usize,
    /// Capacity of the stored-readings broadcast, groups. Default 256.
    pub observer_queue_max: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            data_dir: PathBuf::from("./data"),
            group_batches_max: 512,
            group_readings_max: 200_000,
            max_readings_per_batch: 10_000,
            dedup_keep_days: 7,
            assignment_cache_ms: 60_000,
            assignment_cache_max: 200_000,
            observer_queue_max: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest config: {0}")]
    Config(String),
    #[error(transparent)]
    Dedup(#[from] dedup::DedupError),
    #[error("the broker's inbound stream is already taken by another ingest")]
    InboundTaken,
    #[error("ingest thread: {0}")]
    Thread(std::io::Error),
}

/// Readings stored by one group commit, sorted by timestamp.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    pub readings: Vec<StoredReading>,
}

/// The running ingest. Dropping it does not stop the thread; it ends when the broker closes.
pub struct IngestHandle {
    metrics: Arc<IngestMetrics>,
    observers: broadcast::Sender<Arc<StoredGroup>>,
}

impl IngestHandle {
    pub fn metrics(&self) -> Arc<IngestMetrics> {
        self.metrics.clone()
    }

    /// Stored readings, group by group (see the module doc for the lagging contract).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredGroup>> {
        self.observers.subscribe()
    }
}

/// Starts ingest on the broker's inbound stream, writing to `sinks` (all of them, in order).
pub fn spawn(
    cfg: &IngestConfig,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
) -> Result<IngestHandle, IngestError> {
    if cfg.group_batches_max == 0 || cfg.group_readings_max == 0 || cfg.observer_queue_max == 0 {
        return Err(IngestError::Config(
            "group_batches_max, group_readings_max and observer_queue_max must be > 0".into(),
        ));
    }
    if sinks.is_empty() {
        return Err(IngestError::Config("at least one time-series sink".into()));
    }
    let inbound = broker.take_inbound().ok_or(IngestError::InboundTaken)?;
    let dedup = dedup::DedupStore::open(&cfg.data_dir, cfg.dedup_keep_days, now_ns())?;
    let metrics = Arc::new(IngestMetrics::default());
    let (observers, _) = broadcast::channel(cfg.observer_queue_max);
    let mut worker = Worker {
        cfg: cfg.clone(),
        registry,
        sinks,
        dedup,
        outbound: broker.outbound(),
        metrics: metrics.clone(),
        observers: observers.clone(),
        assignments: HashMap::new(),
        last_prune: Instant::now(),
    };
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || worker.run(inbound))
        .map_err(IngestError::Thread)?;
    Ok(IngestHandle { metrics, observers })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A batch that passed identity checks and is not a known duplicate.
struct Accepted {
    batch: UplinkBatch,
}

struct Worker {
    cfg: IngestConfig,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    dedup: dedup::DedupStore,
    outbound: mpsc::Sender<Outbound>,
    metrics: Arc<IngestMetrics>,
    observers: broadcast::Sender<Arc<StoredGroup>>,
    assignments: HashMap<String, (Option<SensorAssignment>, Instant)>,
    last_prune: Instant,
}

impl Worker {
    fn run(&mut self, mut inbound: mpsc::Receiver<Inbound>) {
        while let Some(first) = inbound.blocking_recv() {
            let mut group = vec![first];
            // Take what is already waiting, up to the group bounds: the group commit.
            while group.len() < self.cfg.group_batches_max {
                match inbound.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            self.process(group);
            if self.last_prune.elapsed() > Duration::from_secs(3600) {
                self.last_prune = Instant::now();
                if let Err(e) = self.dedup.prune(now_ns()) {
                    tracing::error!(error = %e, "dedup prune failed");
                }
            }
        }
        tracing::info!("ingest stopped: broker stream closed");
    }

    fn process(&mut self, group: Vec<Inbound>) {
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut duplicates: Vec<(String, u64, u64)> = Vec::new();
        let mut in_group: HashSet<(String, u64, u64)> = HashSet::new();
        let mut readings_n = 0usize;
        for msg in group {
            let Some(edge) = topics::edge_of(&msg.topic) else {
                self.reject(RejectReason::UnknownTopic, &msg.topic, "not an edge topic");
                continue;
            };
            if msg.topic.ends_with("/status") {
                self.status(edge, &msg);
                continue;
            }
            if !msg.topic.ends_with("/batches") {
                self.reject(RejectReason::UnknownTopic, &msg.topic, "not an edge topic");
                continue;
            }
            self.metrics.batches_received.fetch_add(1, Relaxed);
            let Some(batch) = self.verify(edge, &msg) else {
                continue;
            };
            let key = (batch.edge_id.0.clone(), batch.epoch, batch.seq);
            let known = in_group.contains(&key)
                || match self.dedup.contains(&key.0, key.1, key.2) {
                    Ok(k) => k,
                    Err(e) => {
                        // Unknown: store it (idempotent) rather than risk acking unstored data.
                        tracing::error!(error = %e, "dedup lookup failed");
                        false
                    }
                };
            if known {
                duplicates.push(key);
                continue;
            }
            in_group.insert(key);
            readings_n += batch.readings.len();
            accepted.push(Accepted { batch });
            if readings_n >= self.cfg.group_readings_max {
                // Group full: commit it and go on with the rest of the messages.
                self.commit(
                    std::mem::take(&mut accepted),
                    std::mem::take(&mut duplicates),
                );
                readings_n = 0;
            }
        }
        self.commit(accepted, duplicates);
    }

    fn reject(&self, reason: RejectReason, topic: &str, detail: &str) {
        self.metrics.reject(reason);
        tracing::warn!(reason = reason.name(), %topic, %detail, "message from edge refused");
    }

    fn status(&self, edge: &str, msg: &Inbound) {
        let status = match EdgeStatus::decode(&msg.payload) {
            Ok(s) => s,
            Err(e) => {
                self.reject(reject_of(e), &msg.topic, &e.to_string());
                return;
            }
        };
        if status.edge_id.as_str() != edge {
            let detail = format!("status names edge {}", status.edge_id);
            self.reject(RejectReason::WrongEdge, &msg.topic, &detail);
            return;
        }
        self.metrics.status_received.fetch_add(1, Relaxed);
        if let Err(e) = self.registry.record_edge_status(&status) {
            self.metrics.registry_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, edge_id = edge, "cannot record edge status");
        }
    }

    /// Topic edge, batch edge and HMAC must agree.
    fn verify(&self, edge: &str, msg: &Inbound) -> Option<UplinkBatch> {
        let unverified = match UplinkBatch::open(&msg.payload) {
            Ok(u) => u,
            Err(e) => {
                self.reject(reject_of(e), &msg.topic, &e.to_string());
                return None;
            }
        };
        if unverified.batch.edge_id.as_str() != edge {
            let detail = format!("batch names edge {}", unverified.batch.edge_id);
            self.reject(RejectReason::WrongEdge, &msg.topic, &detail);
            return None;
        }
        let creds = match self.registry.edge_credentials(edge) {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.reject(
                    RejectReason::UnknownEdge,
                    &msg.topic,
                    "no credentials issued",
                );
                return None;
            }
            Err(e) => {
                // Not the edge's fault: not acked, it will resend.
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, edge_id = edge, "registry unavailable");
                return None;
            }
        };
        if creds.revoked {
            self.reject(RejectReason::Revoked, &msg.topic, "credentials revoked");
            return None;
        }
        let batch = match unverified.verify(&creds.mac_key) {
            Ok(b) => b,
            Err(e) => {
                self.reject(reject_of(e), &msg.topic, &e.to_string());
                return None;
            }
        };
        if batch.readings.len() > self.cfg.max_readings_per_batch {
            let detail = format!(
                "{} readings > max_readings_per_batch {}",
                batch.readings.len(),
                self.cfg.max_readings_per_batch
            );
            self.reject(RejectReason::Oversize, &msg.topic, &detail);
            return None;
        }
        // NaN/inf cannot be stored (SQLite turns NaN into NULL) and would block the batch's ack
        // forever: such readings are dropped and counted, the rest of the batch is stored.
        let mut batch = batch;
        let before = batch.readings.len();
        batch.readings.retain(|r| r.value.is_finite());
        let dropped = (before - batch.readings.len()) as u64;
        if dropped > 0 {
            self.metrics
                .readings_dropped_non_finite
                .fetch_add(dropped, Relaxed);
            tracing::warn!(topic = %msg.topic, dropped, "non-finite reading values dropped");
        }
        Some(batch)
    }

    fn assignment(&mut self, sensor: &str, edge: &str, at_ns: i64) -> Option<SensorAssignment> {
        let ttl = Duration::from_millis(self.cfg.assignment_cache_ms);
        if let Some((a, t)) = self.assignments.get(sensor) {
            if t.elapsed() < ttl {
                return a.clone();
            }
        }
        let a = match self.registry.sensor_assignment(sensor) {
            Ok(a) => a,
            Err(e) => {
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, sensor_id = sensor, "sensor lookup failed");
                return None; // stored without component; not cached, retried next time
            }
        };
        let unassigned = a.as_ref().is_none_or(|a| a.component_id.is_none());
        if unassigned {
            if let Err(e) = self.registry.note_unassigned_sensor(sensor, edge, at_ns) {
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, sensor_id = sensor, "cannot list unassigned sensor");
            }
        }
        if self.assignments.len() >= self.cfg.assignment_cache_max {
            self.assignments.clear();
        }
        self.assignments
            .insert(sensor.to_string(), (a.clone(), Instant::now()));
        a
    }

    fn commit(&mut self, accepted: Vec<Accepted>, duplicates: Vec<(String, u64, u64)>) {
        let now = now_ns();
        let mut readings =
            Vec::with_capacity(accepted.iter().map(|a| a.batch.readings.len()).sum());
        for a in &accepted {
            let edge = a.batch.edge_id.as_str();
            for g in &a.batch.gaps {
                self.metrics
                    .gap_readings_reported
                    .fetch_add(g.count, Relaxed);
                tracing::warn!(edge_id = edge, sensor_id = %g.sensor, count = g.count,
                    reason = ?g.reason, "edge reports lost readings");
            }
            for r in &a.batch.readings {
                let asg = self.assignment(r.sensor.as_str(), edge, now);
                let component_id = asg.as_ref().and_then(|a| a.component_id.clone());
                if component_id.is_none() {
                    self.metrics.readings_unassigned.fetch_add(1, Relaxed);
                }
                readings.push(StoredReading {
                    reading: r.clone(),
                    edge_id: edge.to_string(),
                    component_id,
                    grid_cell: asg.as_ref().and_then(|a| a.grid_cell.clone()),
                    department: asg.and_then(|a| a.owner_department),
                });
            }
        }
        if !accepted.is_empty() {
            readings.sort_by_key(|r| r.reading.ts_ns);
            // Every sink writes the group at the same time (each on its own scoped thread but
            // the first); the group counts as stored only if all of them succeeded.
            let results: Vec<(&'static str, u64, Result<(), TsError>)> =
                std::thread::scope(|scope| {
                    let timed = |sink: &Arc<dyn TimeSeriesSink>| {
                        let t = Instant::now();
                        let res = sink.write(&readings);
                        (sink.name(), t.elapsed().as_micros() as u64, res)
                    };
                    let others: Vec<_> = self.sinks[1..]
                        .iter()
                        .map(|sink| scope.spawn(move || timed(sink)))
                        .collect();
                    let mut out = vec![timed(&self.sinks[0])];
                    for h in others {
                        out.push(h.join().unwrap_or_else(|_| {
                            ("unknown", 0, Err(TsError::Store("sink panicked".into())))
                        }));
                    }
                    out
                });
            let mut failed = false;
            for (name, us, res) in results {
                self.metrics.sink_write(name, us, res.is_ok());
                if let Err(e) = res {
                    failed = true;
                    tracing::error!(sink = name, error = %e, batches = accepted.len(),
                        "sink write failed; batches not acked, edges will resend");
                }
            }
            if failed {
                self.metrics.groups_failed.fetch_add(1, Relaxed);
                // Duplicates were stored earlier: they may still be acked.
                self.ack_all(&duplicates, AckOutcome::Duplicate);
                return;
            }
            // Gaps ride on their batches: recorded before the ack (idempotently), and a batch
            // whose gaps could not be recorded is not acked, so the edge resends it.
            let (accepted, unrecorded): (Vec<_>, Vec<_>) = accepted.into_iter().partition(|a| {
                a.batch.gaps.is_empty()
                    || self
                        .registry
                        .record_gaps(
                            a.batch.edge_id.as_str(),
                            a.batch.epoch,
                            a.batch.seq,
                            &a.batch.gaps,
                            now,
                        )
                        .inspect_err(|e| {
                            self.metrics.registry_errors.fetch_add(1, Relaxed);
                            tracing::error!(error = %e, edge_id = %a.batch.edge_id,
                                    "cannot record gaps; batch not acked, the edge will resend");
                        })
                        .is_ok()
            });
            if !unrecorded.is_empty() {
                self.metrics.groups_failed.fetch_add(1, Relaxed);
            }
            let ids = accepted
                .iter()
                .map(|a| (a.batch.edge_id.as_str(), a.batch.epoch, a.batch.seq));
            if let Err(e) = self.dedup.insert_all(ids, now) {
                // The readings are stored (idempotently); a resend is stored again harmlessly.
                tracing::error!(error = %e, "cannot record stored batches for dedup");
            }
            self.metrics.groups_committed.fetch_add(1, Relaxed);
            self.metrics
                .readings_stored
                .fetch_add(readings.len() as u64, Relaxed);
            self.metrics
                .batches_stored
                .fetch_add(accepted.len() as u64, Relaxed);
            let mut seen: HashSet<&str> = HashSet::new();
            for a in &accepted {
                let edge = a.batch.edge_id.as_str();
                if seen.insert(edge) {
                    if let Err(e) = self.registry.record_edge_seen(edge, now) {
                        self.metrics.registry_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, edge_id = edge, "cannot record edge seen");
                    }
                }
            }
            // No receiver is fine: nobody listens yet.
            let _ = self.observers.send(Arc::new(StoredGroup { readings }));
            let ids: Vec<(String, u64, u64)> = accepted
                .into_iter()
                .map(|a| (a.batch.edge_id.0, a.batch.epoch, a.batch.seq))
                .collect();
            self.ack_all(&ids, AckOutcome::Stored);
        }
        self.metrics
            .batches_duplicate
            .fetch_add(duplicates.len() as u64, Relaxed);
        self.ack_all(&duplicates, AckOutcome::Duplicate);
    }

    fn ack_all(&self, ids: &[(String, u64, u64)], outcome: AckOutcome) {
        for (edge, epoch, seq) in ids {
            let ack = Ack {
                epoch: *epoch,
                seq: *seq,
                outcome,
            };
            let out = Outbound {
                topic: topics::acks(edge),
                payload: ack.encode().into(),
            };
            if self.outbound.blocking_send(out).is_err() {
                tracing::error!("broker outbound closed; ack not sent");
                return;
            }
            self.metrics.acks_sent.fetch_add(1, Relaxed);
        }
    }
}

fn reject_of(e: UplinkError) -> RejectReason {
    match e {
        UplinkError::BadMac => RejectReason::BadMac,
        UplinkError::UnknownVersion(_) => RejectReason::UnknownVersion,
        UplinkError::Empty | UplinkError::Malformed => RejectReason::Malformed,
    }
}
