//! Ingest: from a message on the broker to stored readings and an ack.
//!
//! For every uplink batch, in this order:
//! 1. decode (`UplinkBatch::open`), refuse if the topic's edge id differs from the batch's
//!    `edge_id` (`wrong_edge`), look up that edge's credentials (`unknown_edge`, `revoked`) and
//!    verify the HMAC with its key (`bad_mac`): all three must agree, so an edge can only publish
//!    as itself whatever the broker allows;
//! 2. dedup on (edge, epoch, seq) against the persisted [`dedup::DedupStore`];
//! 3. trust nothing the batch claims about others: a reading is refused (counted in
//!    `wangge_ingest_readings_rejected_total{reason}`, never stored, never seen by the rules) if
//!    its timestamp is outside [now − `ts_past_max_s`, now + `ts_future_max_s`]
//!    (`ts_out_of_window`), if its sensor is registered to another edge (`foreign_sensor`,
//!    audited once per (edge, sensor) in the registry), or if the sensor is not registered and
//!    `unregistered = "reject"` (`unregistered`); the batch is still stored and acked for the
//!    rest, otherwise the edge would resend it forever. The rest is mapped to its component
//!    through the registry (cached); unassigned sensors are noted;
//! 4. write the readings to every sink; one write per sink covers a whole group of batches
//!    that were waiting (group commit: one fsync for many batches);
//! 5. hand the stored group to the rules stage ([`RulesStage`], the events engine) over a
//!    bounded queue (`rules_queue_max` groups; a full queue blocks ingest: backpressure, never
//!    a dropped group);
//! 6. once the rules have evaluated the group: record its batches as stored (dedup), then
//!    publish `Ack` on `wangge/v1/edges/{id}/acks`, sealed under the edge's key and naming it.
//!
//! So an acked batch has been stored *and* seen by the rules. If the hub dies anywhere before
//! step 6, the edge resends the batch: the sinks store it again without effect (idempotent on
//! (sensor, quantity, ts)) and the rules see its readings again (re-evaluation raises nothing
//! twice: `wangge_events::rules` and the events store's stale-raise checks). If any sink fails,
//! no batch of the group is acked: the edges keep and resend them. A resend that arrives while
//! its first copy waits for the rules is dropped (counted): the first copy's ack answers it.
//! Status messages go to `RegistryStore::record_edge_status`, which refuses replays (an
//! (epoch, counter) not newer than the last accepted one, except the last will it announced):
//! counted as `stale_status`.
//!
//! Two threads: `ingest` (verify, dedup lookup, store: sinks and registry are synchronous and
//! one writer keeps SQLite free of lock contention) and `ingest-rules` (rules, dedup insert,
//! acks). They form a pipeline: ingest stores group N+1 while the rules evaluate group N.
//!
//! **Observers**: [`IngestHandle::subscribe`] returns a
//! `tokio::sync::broadcast::Receiver<Arc<StoredGroup>>`: every group of readings once it is
//! stored in every sink and evaluated by the rules (before its ack), readings sorted by
//! timestamp. Best effort, for watchers (tests, taps): the channel is bounded
//! (`observer_queue_max` groups), a receiver that falls behind gets `RecvError::Lagged(n)`, and
//! ingest never waits for it. Whatever must not miss a reading is a [`RulesStage`] instead.

pub mod dedup;
pub mod metrics;

use crate::broker::{BrokerHandle, Inbound, Outbound};
use crate::registry::Freshness;
use crate::registry::{RegistryStore, SensorAssignment};
use crate::timeseries::{StoredReading, TimeSeriesSink, TsError};
pub use metrics::ReadingRejectReason;
pub use metrics::{IngestMetrics, RejectReason, SinkStats};
use protocol::uplink::{
    topics, Ack, AckOutcome, EdgeId, EdgeStatus, UplinkBatch, UplinkError, UPLINK_VERSION,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
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
    /// Capacity of the stored-readings broadcast for observers, groups. Default 256.
    pub observer_queue_max: usize,
    /// Stored groups waiting for the rules stage, at most. Default 2: enough for ingest to store
    /// the next group while the rules evaluate one; when full, ingest waits (backpressure).
    /// Memory bound: `rules_queue_max × group_readings_max` readings.
    pub rules_queue_max: usize,
    /// Readings of sensors that are not in the registry: `"store"` (default: stored without a
    /// component, never evaluated against one, and listed for an operator to assign, so a new
    /// sensor's data is not lost while it is being registered) or `"reject"` (counted as
    /// `unregistered`, not stored; the sensor is still listed).
    pub unregistered: UnregisteredPolicy,
    /// Oldest reading accepted, seconds before the hub's clock. Default 2 592 000 (30 days): an
    /// edge buffers up to `buffer_bytes_max` (1 GiB by default, millions of readings, weeks of
    /// a site's traffic) through an outage and sends its backlog afterwards; 30 days covers
    /// that backlog while refusing readings dated years back (a bad clock, or a forger
    /// rewriting history).
    pub ts_past_max_s: u64,
    /// Newest reading accepted, seconds after the hub's clock. Default 600 (10 min): the edge
    /// already replaces sensor clocks more than 5 min ahead with its own; 10 min leaves room
    /// for the edge's own clock drift without letting a reading be dated into the future,
    /// where it would shadow real readings in "latest value" queries.
    pub ts_future_max_s: u64,
}

/// What ingest does with a reading of a sensor the registry does not know (`[ingest]
/// unregistered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnregisteredPolicy {
    #[default]
    Store,
    Reject,
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
            rules_queue_max: 2,
            unregistered: UnregisteredPolicy::Store,
            ts_past_max_s: 30 * 24 * 3600,
            ts_future_max_s: 600,
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

/// The last stage of ingest before the ack: the events rules. It gets every stored group, in
/// the order they were stored, and the group's batches are recorded and acked only after
/// [`RulesStage::evaluate`] returned — so no acked reading escapes the rules, even across a
/// `kill -9` of the hub. It must therefore tolerate seeing a reading again (a resent batch
/// after a crash) without raising anything twice.
pub trait RulesStage: Send {
    /// Evaluates one stored group (readings sorted by timestamp). Runs on the `ingest-rules`
    /// thread; ingest stores the next group meanwhile. `Err` when an event the group raised or
    /// cleared could not be stored: the group's batches are then neither recorded nor acked
    /// (the edges resend them; the stage keeps what it could not store and retries it).
    fn evaluate(&mut self, group: &StoredGroup) -> Result<(), String>;
}

/// A batch's identity: (edge, epoch, seq).
type BatchId = (String, u64, u64);

/// A stored group on its way to the rules stage, then to dedup and the acks.
struct StoredForRules {
    group: Arc<StoredGroup>,
    batches: Vec<BatchId>,
    /// The MAC keys of the batches' edges, to seal their acks.
    keys: EdgeKeys,
}

/// MAC key of each edge whose batch verified: acks are sealed with it.
type EdgeKeys = HashMap<String, [u8; 32]>;

/// The running ingest. Dropping it does not stop the thread; it ends when the broker closes.
pub struct IngestHandle {
    metrics: Arc<IngestMetrics>,
    observers: broadcast::Sender<Arc<StoredGroup>>,
    /// The `ingest` and `ingest-rules` threads, for liveness (`hub::supervise` watches them).
    threads: Vec<(&'static str, Arc<std::thread::JoinHandle<()>>)>,
}

impl IngestHandle {
    /// Liveness probes of ingest's threads, by part name: `true` while the thread runs.
    pub fn liveness(&self) -> Vec<(&'static str, impl Fn() -> bool + Send + Sync + 'static)> {
        self.threads
            .iter()
            .map(|(name, h)| {
                let h = h.clone();
                (*name, move || !h.is_finished())
            })
            .collect()
    }

    pub fn metrics(&self) -> Arc<IngestMetrics> {
        self.metrics.clone()
    }

    /// Stored readings, group by group (see the module doc for the lagging contract).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredGroup>> {
        self.observers.subscribe()
    }
}

/// Starts ingest on the broker's inbound stream, writing to `sinks` (all of them, in order),
/// without a rules stage (batches are acked once stored).
pub fn spawn(
    cfg: &IngestConfig,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
) -> Result<IngestHandle, IngestError> {
    spawn_with_rules(cfg, broker, registry, sinks, None)
}

/// Starts ingest like [`spawn`], with `rules` as the stage every stored group passes through
/// before its batches are acked (see [`RulesStage`]).
pub fn spawn_with_rules(
    cfg: &IngestConfig,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    rules: Option<Box<dyn RulesStage>>,
) -> Result<IngestHandle, IngestError> {
    if cfg.group_batches_max == 0
        || cfg.group_readings_max == 0
        || cfg.observer_queue_max == 0
        || cfg.rules_queue_max == 0
    {
        return Err(IngestError::Config(
            "group_batches_max, group_readings_max, observer_queue_max and rules_queue_max \
             must be > 0"
                .into(),
        ));
    }
    if sinks.is_empty() {
        return Err(IngestError::Config("at least one time-series sink".into()));
    }
    let inbound = broker.take_inbound().ok_or(IngestError::InboundTaken)?;
    let dedup = Arc::new(Mutex::new(dedup::DedupStore::open(
        &cfg.data_dir,
        cfg.dedup_keep_days,
        now_ns(),
    )?));
    let metrics = Arc::new(IngestMetrics::default());
    let (observers, _) = broadcast::channel(cfg.observer_queue_max);
    let in_flight: Arc<Mutex<HashSet<BatchId>>> = Arc::default();
    let (to_rules, from_ingest) = std::sync::mpsc::sync_channel(cfg.rules_queue_max);
    let mut acker = Acker {
        rules,
        dedup: dedup.clone(),
        in_flight: in_flight.clone(),
        observers: observers.clone(),
        outbound: broker.outbound(),
        metrics: metrics.clone(),
    };
    let rules_thread = std::thread::Builder::new()
        .name("ingest-rules".into())
        .spawn(move || acker.run(from_ingest))
        .map_err(IngestError::Thread)?;
    let mut worker = Worker {
        cfg: cfg.clone(),
        registry,
        sinks,
        dedup,
        in_flight,
        to_rules,
        outbound: broker.outbound(),
        metrics: metrics.clone(),
        assignments: HashMap::new(),
        last_prune: Instant::now(),
        keys: HashMap::new(),
        audited: HashSet::new(),
        version_logged: RefCell::new(HashMap::new()),
    };
    let ingest_thread = std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || worker.run(inbound))
        .map_err(IngestError::Thread)?;
    Ok(IngestHandle {
        metrics,
        observers,
        threads: vec![
            ("ingest", Arc::new(ingest_thread)),
            ("rules", Arc::new(rules_thread)),
        ],
    })
}

/// The dedup table, shared by the lookup (ingest thread) and the insert after the rules
/// (`ingest-rules` thread). A poisoned lock still holds a usable connection.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `ingest-rules` thread: rules, then dedup insert, then acks, group by group in order.
struct Acker {
    rules: Option<Box<dyn RulesStage>>,
    dedup: Arc<Mutex<dedup::DedupStore>>,
    /// Batches handed to this thread and not yet acked (see `Worker::process`).
    in_flight: Arc<Mutex<HashSet<BatchId>>>,
    observers: broadcast::Sender<Arc<StoredGroup>>,
    outbound: mpsc::Sender<Outbound>,
    metrics: Arc<IngestMetrics>,
}

impl Acker {
    fn run(&mut self, groups: std::sync::mpsc::Receiver<StoredForRules>) {
        while let Ok(stored) = groups.recv() {
            if let Some(rules) = self.rules.as_mut() {
                let started = Instant::now();
                let evaluated = rules.evaluate(&stored.group);
                self.metrics
                    .rules_us
                    .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
                self.metrics.groups_evaluated.fetch_add(1, Relaxed);
                if let Err(e) = evaluated {
                    // Not recorded, not acked: the edges resend, and the resend is stored and
                    // evaluated again (both idempotent) once the events store works again.
                    tracing::error!(error = %e, batches = stored.batches.len(),
                        "the rules could not store an event change; the group is not acked");
                    self.metrics.groups_rules_failed.fetch_add(1, Relaxed);
                    let mut in_flight = lock(&self.in_flight);
                    for id in &stored.batches {
                        in_flight.remove(id);
                    }
                    continue;
                }
            }
            // No receiver is fine: nobody watches.
            let _ = self.observers.send(stored.group);
            let ids = stored
                .batches
                .iter()
                .map(|(e, ep, s)| (e.as_str(), *ep, *s));
            if let Err(e) = lock(&self.dedup).insert_all(ids, now_ns()) {
                // The readings are stored (idempotently) and evaluated (idempotently): a
                // resend is stored and evaluated again harmlessly.
                tracing::error!(error = %e, "cannot record stored batches for dedup");
            }
            {
                let mut in_flight = lock(&self.in_flight);
                for id in &stored.batches {
                    in_flight.remove(id);
                }
            }
            send_acks(
                &self.outbound,
                &self.metrics,
                &stored.batches,
                AckOutcome::Stored,
                &stored.keys,
            );
        }
        tracing::info!("ingest rules stage stopped: ingest ended");
    }
}

use protocol::time::now_ns;

/// A batch that passed identity checks and is not a known duplicate.
struct Accepted {
    batch: UplinkBatch,
}

struct Worker {
    cfg: IngestConfig,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    dedup: Arc<Mutex<dedup::DedupStore>>,
    /// Batches stored and handed to the rules stage, not yet acked: a resend of one of them is
    /// dropped here (its first copy's ack answers it) instead of being stored and evaluated
    /// again. Shared with the `ingest-rules` thread, which removes them after the dedup insert.
    in_flight: Arc<Mutex<HashSet<BatchId>>>,
    to_rules: std::sync::mpsc::SyncSender<StoredForRules>,
    outbound: mpsc::Sender<Outbound>,
    metrics: Arc<IngestMetrics>,
    assignments: HashMap<String, (Option<SensorAssignment>, Instant)>,
    last_prune: Instant,
    /// The key each edge's last batch verified with (seals its acks).
    keys: EdgeKeys,
    /// (edge, sensor) pairs already audited as foreign this run (the registry dedups across
    /// runs); cleared when `assignment_cache_max` is reached.
    audited: HashSet<(String, String)>,
    /// When a peer's unknown protocol version was last logged, per edge (once a minute).
    version_logged: RefCell<HashMap<String, Instant>>,
}

/// How often a peer speaking another protocol version is logged, per edge.
const VERSION_LOG_EVERY: Duration = Duration::from_secs(60);

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
                if let Err(e) = lock(&self.dedup).prune(now_ns()) {
                    tracing::error!(error = %e, "dedup prune failed");
                }
            }
        }
        tracing::info!("ingest stopped: broker stream closed");
    }

    fn process(&mut self, group: Vec<Inbound>) {
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut duplicates: Vec<BatchId> = Vec::new();
        let mut in_group: HashSet<BatchId> = HashSet::new();
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
            if lock(&self.in_flight).contains(&key) {
                self.metrics.batches_resent_in_flight.fetch_add(1, Relaxed);
                tracing::debug!(edge_id = %key.0, epoch = key.1, seq = key.2,
                    "resent batch still waiting for the rules; its ack will answer it");
                continue;
            }
            let known = in_group.contains(&key)
                || match lock(&self.dedup).contains(&key.0, key.1, key.2) {
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

    /// Refuses a message by the reason `e` names; a peer of another protocol version is
    /// counted every time but logged once a minute per edge (it sends many).
    fn reject_uplink(&self, e: UplinkError, edge: &str, topic: &str) {
        let UplinkError::UnknownVersion(v) = e else {
            return self.reject(reject_of(e), topic, &e.to_string());
        };
        self.metrics.reject(RejectReason::UnknownVersion);
        let mut logged = self.version_logged.borrow_mut();
        let due = logged
            .get(edge)
            .is_none_or(|t| t.elapsed() >= VERSION_LOG_EVERY);
        if due {
            if logged.len() >= self.cfg.assignment_cache_max {
                logged.clear();
            }
            logged.insert(edge.to_string(), Instant::now());
            tracing::error!(edge_id = edge, %topic, reason = "unknown_version",
                "edge {edge} speaks protocol version {v}, this hub speaks {UPLINK_VERSION}: \
                 its messages are refused until one of them is upgraded");
        }
    }

    /// A status counts only if it is sealed with the key of the edge its topic names (the
    /// broker has no per-topic ACL: any logged-in edge could publish on another's topic).
    fn status(&self, edge: &str, msg: &Inbound) {
        let Some(key) = self.edge_key(edge, &msg.topic) else {
            return;
        };
        let status = match EdgeStatus::open(&msg.payload, &key) {
            Ok(s) => s,
            Err(e) => {
                self.reject_uplink(e, edge, &msg.topic);
                return;
            }
        };
        if status.edge_id.as_str() != edge {
            let detail = format!("status names edge {}", status.edge_id);
            self.reject(RejectReason::WrongEdge, &msg.topic, &detail);
            return;
        }
        match self.registry.record_edge_status(&status) {
            Ok(Freshness::Fresh | Freshness::AnnouncedWill) => {
                self.metrics.status_received.fetch_add(1, Relaxed);
            }
            // The retained copy after a hub restart, or a QoS 1 redelivery: already recorded.
            Ok(Freshness::Same) => {
                tracing::debug!(edge_id = edge, "status already recorded");
            }
            Ok(Freshness::Stale) => {
                let detail = format!(
                    "status (epoch {}, counter {}, online {}) is not newer than the last \
                     accepted one: a replay",
                    status.epoch, status.counter, status.online
                );
                self.reject(RejectReason::StaleStatus, &msg.topic, &detail);
            }
            Err(e) => {
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, edge_id = edge, "cannot record edge status");
            }
        }
    }

    /// The MAC key of a known, unrevoked edge (refusals counted; a registry failure is not the
    /// edge's fault: nothing is acked, it resends).
    fn edge_key(&self, edge: &str, topic: &str) -> Option<[u8; 32]> {
        let creds = match self.registry.edge_credentials(edge) {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.reject(RejectReason::UnknownEdge, topic, "no credentials issued");
                return None;
            }
            Err(e) => {
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, edge_id = edge, "registry unavailable");
                return None;
            }
        };
        if creds.revoked {
            self.reject(RejectReason::Revoked, topic, "credentials revoked");
            return None;
        }
        Some(creds.mac_key)
    }

    /// Topic edge, batch edge and HMAC must agree.
    fn verify(&mut self, edge: &str, msg: &Inbound) -> Option<UplinkBatch> {
        let unverified = match UplinkBatch::open(&msg.payload) {
            Ok(u) => u,
            Err(e) => {
                self.reject_uplink(e, edge, &msg.topic);
                return None;
            }
        };
        if unverified.batch.edge_id.as_str() != edge {
            let detail = format!("batch names edge {}", unverified.batch.edge_id);
            self.reject(RejectReason::WrongEdge, &msg.topic, &detail);
            return None;
        }
        let key = self.edge_key(edge, &msg.topic)?;
        let batch = match unverified.verify(&key) {
            Ok(b) => b,
            Err(e) => {
                self.reject(reject_of(e), &msg.topic, &e.to_string());
                return None;
            }
        };
        if self.keys.len() >= self.cfg.assignment_cache_max && !self.keys.contains_key(edge) {
            self.keys.clear();
        }
        self.keys.insert(edge.to_string(), key);
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

    /// A reading's assignment, and why it is refused if it is (see the module doc, step 3).
    fn judge_reading(
        &mut self,
        r: &protocol::uplink::Reading,
        edge: &str,
        now: i64,
    ) -> (Option<SensorAssignment>, Option<ReadingRejectReason>) {
        let past =
            i64::try_from(self.cfg.ts_past_max_s.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
        let future = i64::try_from(self.cfg.ts_future_max_s.saturating_mul(1_000_000_000))
            .unwrap_or(i64::MAX);
        if r.ts_ns < now.saturating_sub(past) || r.ts_ns > now.saturating_add(future) {
            return (None, Some(ReadingRejectReason::TsOutOfWindow));
        }
        let sensor = r.sensor.as_str();
        let asg = self.assignment(sensor, edge, now);
        match &asg {
            Some(a) => {
                if let Some(owner) = a.edge_id.as_deref().filter(|o| *o != edge) {
                    self.audit_foreign(edge, sensor, owner, now);
                    return (None, Some(ReadingRejectReason::ForeignSensor));
                }
            }
            None if self.cfg.unregistered == UnregisteredPolicy::Reject => {
                return (None, Some(ReadingRejectReason::Unregistered));
            }
            None => {}
        }
        (asg, None)
    }

    /// Records, once per (edge, sensor), that `edge` sent readings of a sensor registered to
    /// `owner`: an edge whose secret leaked, or a mis-wired site; an operator must look.
    fn audit_foreign(&mut self, edge: &str, sensor: &str, owner: &str, now: i64) {
        let pair = (edge.to_string(), sensor.to_string());
        if self.audited.contains(&pair) {
            return;
        }
        let detail = format!("sensor registered to edge {owner}");
        match self
            .registry
            .audit_ingest("foreign_sensor", edge, sensor, &detail, now)
        {
            Ok(first) => {
                if first {
                    tracing::warn!(
                        edge_id = edge,
                        sensor_id = sensor,
                        owner_edge = owner,
                        reason = "foreign_sensor",
                        "edge sent readings for another edge's sensor; refused and audited"
                    );
                }
                if self.audited.len() >= self.cfg.assignment_cache_max {
                    self.audited.clear();
                }
                self.audited.insert(pair);
            }
            Err(e) => {
                // Not cached: audited on a later reading once the registry works again.
                self.metrics.registry_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, edge_id = edge, sensor_id = sensor,
                    "cannot audit a foreign sensor");
            }
        }
    }

    fn commit(&mut self, accepted: Vec<Accepted>, duplicates: Vec<BatchId>) {
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
            let mut refused = [0u64; ReadingRejectReason::ALL.len()];
            for r in &a.batch.readings {
                let (asg, verdict) = self.judge_reading(r, edge, now);
                if let Some(reason) = verdict {
                    self.metrics.reading_rejected(reason);
                    refused[reason as usize] += 1;
                    continue;
                }
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
            for reason in ReadingRejectReason::ALL {
                let n = refused[reason as usize];
                if n > 0 {
                    tracing::warn!(
                        edge_id = edge,
                        epoch = a.batch.epoch,
                        seq = a.batch.seq,
                        reason = reason.name(),
                        readings = n,
                        "readings refused; the rest of the batch is stored and acked"
                    );
                }
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
            let batches: Vec<BatchId> = accepted
                .into_iter()
                .map(|a| (a.batch.edge_id.0, a.batch.epoch, a.batch.seq))
                .collect();
            let keys = self.keys_of(&batches);
            self.hand_to_rules(StoredForRules {
                group: Arc::new(StoredGroup { readings }),
                batches,
                keys,
            });
        }
        self.metrics
            .batches_duplicate
            .fetch_add(duplicates.len() as u64, Relaxed);
        self.ack_all(&duplicates, AckOutcome::Duplicate);
    }

    /// Queues a stored group for the rules stage, which records and acks it afterwards. Waits
    /// while the queue is full (the rules are behind): the broker's inbound queue then fills
    /// and holds the edges back; nothing is dropped.
    fn hand_to_rules(&self, stored: StoredForRules) {
        lock(&self.in_flight).extend(stored.batches.iter().cloned());
        let stored = match self.to_rules.try_send(stored) {
            Ok(()) => return,
            Err(std::sync::mpsc::TrySendError::Full(s)) => s,
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                tracing::error!("ingest rules stage gone; batches not acked");
                return;
            }
        };
        let waited = Instant::now();
        if self.to_rules.send(stored).is_err() {
            tracing::error!("ingest rules stage gone; batches not acked");
        }
        self.metrics
            .rules_wait_us
            .fetch_add(waited.elapsed().as_micros() as u64, Relaxed);
    }

    fn ack_all(&self, ids: &[BatchId], outcome: AckOutcome) {
        send_acks(
            &self.outbound,
            &self.metrics,
            ids,
            outcome,
            &self.keys_of(ids),
        );
    }

    fn keys_of(&self, ids: &[BatchId]) -> EdgeKeys {
        ids.iter()
            .filter_map(|(e, _, _)| self.keys.get(e).map(|k| (e.clone(), *k)))
            .collect()
    }
}

/// Publishes one `Ack` per batch on its edge's ack topic.
fn send_acks(
    outbound: &mpsc::Sender<Outbound>,
    metrics: &IngestMetrics,
    ids: &[BatchId],
    outcome: AckOutcome,
    keys: &EdgeKeys,
) {
    for (edge, epoch, seq) in ids {
        let Some(key) = keys.get(edge) else {
            // Cannot happen: every batch verified with its edge's key before it got here.
            tracing::error!(edge_id = %edge, epoch, seq, "no key to seal the ack; not sent");
            continue;
        };
        let ack = Ack {
            edge_id: EdgeId(edge.clone()),
            epoch: *epoch,
            seq: *seq,
            outcome,
        };
        let out = Outbound {
            topic: topics::acks(edge),
            payload: ack.seal(key).into(),
        };
        if outbound.blocking_send(out).is_err() {
            tracing::error!("broker outbound closed; ack not sent");
            return;
        }
        metrics.acks_sent.fetch_add(1, Relaxed);
    }
}

fn reject_of(e: UplinkError) -> RejectReason {
    match e {
        UplinkError::BadMac => RejectReason::BadMac,
        UplinkError::UnknownVersion(_) => RejectReason::UnknownVersion,
        UplinkError::Empty
        | UplinkError::Malformed
        | UplinkError::Unsigned
        | UplinkError::Foreign => RejectReason::Malformed,
    }
}
