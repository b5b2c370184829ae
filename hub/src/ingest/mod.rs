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
//! counted as `stale_status`; an accepted one (or the same again) then goes to the rules stage's
//! [`EdgeStatusHook`] (the events engine's `edge.offline`).
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

mod acks;
mod batch;
pub mod dedup;
mod group;
pub mod ledger;
pub mod metrics;

use acks::Acker;
use ledger::BatchLedger;

use crate::broker::{BrokerHandle, Inbound, Outbound};
use crate::registry::{RegistryStore, SensorAssignment};
use crate::timeseries::{StoredReading, TimeSeriesSink};
pub use metrics::ReadingRejectReason;
pub use metrics::{IngestMetrics, RejectReason, SinkStats};
use protocol::uplink::{topics, SourceDown, UplinkBatch};
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

impl IngestConfig {
    /// The defaults, with `data_dir` set to `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> IngestConfig {
        IngestConfig {
            data_dir: dir.into(),
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

impl Default for IngestConfig {
    /// Data under `./data`.
    fn default() -> Self {
        IngestConfig::in_dir("./data")
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

    /// Who is told of every accepted edge status (the events engine's `edge.offline`); taken
    /// once when ingest starts. None by default.
    fn status_hook(&self) -> Option<Arc<dyn EdgeStatusHook>> {
        None
    }
}

/// Told of every accepted edge status — authenticated, naming its own edge, fresh (or the same
/// as the last accepted: a retained copy states the current state) — on the `ingest` thread.
pub trait EdgeStatusHook: Send + Sync {
    /// `sources_down`: what the status lists down (the edge's word; the hook takes only the
    /// edge's own sensors from it).
    fn edge_status(&self, edge_id: &str, online: bool, sources_down: &[SourceDown]);
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

/// Starts ingest like [`spawn_with_rules`] on the single-node ledger (`<data_dir>/ingest.sqlite`).
pub fn spawn_with_rules(
    cfg: &IngestConfig,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    rules: Option<Box<dyn RulesStage>>,
) -> Result<IngestHandle, IngestError> {
    let ledger = dedup::DedupStore::open(&cfg.data_dir, cfg.dedup_keep_days, now_ns())?;
    spawn_on_ledger(cfg, broker, registry, sinks, rules, Box::new(ledger))
}

/// Starts ingest like [`spawn`], with `rules` as the stage every stored group passes through
/// before its batches are acked (see [`RulesStage`]), recording stored batches in `ledger`
/// (which, in a cluster, also decides whether this hub may ack them).
pub fn spawn_on_ledger(
    cfg: &IngestConfig,
    broker: &BrokerHandle,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    rules: Option<Box<dyn RulesStage>>,
    ledger: Box<dyn BatchLedger>,
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
    let dedup = Arc::new(Mutex::new(ledger));
    let metrics = Arc::new(IngestMetrics::default());
    let (observers, _) = broadcast::channel(cfg.observer_queue_max);
    let in_flight: Arc<Mutex<HashSet<BatchId>>> = Arc::default();
    let (to_rules, from_ingest) = std::sync::mpsc::sync_channel(cfg.rules_queue_max);
    let status_hook = rules.as_ref().and_then(|r| r.status_hook());
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
        status_hook,
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

pub(crate) use protocol::time::now_ns;

/// A batch that passed identity checks and is not a known duplicate.
struct Accepted {
    batch: UplinkBatch,
}

struct Worker {
    cfg: IngestConfig,
    registry: Arc<dyn RegistryStore>,
    sinks: Vec<Arc<dyn TimeSeriesSink>>,
    dedup: Arc<Mutex<Box<dyn BatchLedger>>>,
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
    /// Told of accepted statuses ([`RulesStage::status_hook`]).
    status_hook: Option<Arc<dyn EdgeStatusHook>>,
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
            if !lock(&self.dedup).may_handle(edge) {
                // A cluster peer owns this edge now (or the lease is being handed over): its
                // owner stores and acks the edge's resend.
                self.metrics.batches_not_owned.fetch_add(1, Relaxed);
                continue;
            }
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
}
