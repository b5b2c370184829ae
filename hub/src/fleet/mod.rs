//! Configuration from the hub (issue 14), the hub's side: each edge's desired configuration,
//! stored as versions in the registry ([`crate::registry::edge_config`]), delivered sealed on
//! the edge's own MQTT plane, and the edge's sealed report of what it did with it.
//!
//! - **Storing** ([`store`]): the API (`PUT /api/v1/edges/{id}/config`) and the CLI (`hub edge
//!   config set`) both go through [`store::store_version`]: the [`document`] checks, every
//!   sensor of `edge.sensors` registered to that edge, then the next version.
//! - **Delivery** ([`delivery`]): a task publishes the newest version of an edge, sealed under
//!   that edge's MAC key ([`protocol::edge_config::DesiredConfig::seal`]) and RETAINED on
//!   `wangge/v1/edges/{id}/config`: right after a PUT (a [`Kick`]), and on every pass (every
//!   [`PASS_EVERY`]) for each edge whose newest report does not name that version yet, at most
//!   [`PASS_EDGES_MAX`] edges a pass. In a cluster only the edge's owner publishes.
//! - **Reports** ([`reports`]): `wangge/v1/edges/+/config-report` (split off by the broker link,
//!   never seen by ingest), opened with the key of the edge the TOPIC names; a bad tag, a report
//!   naming another edge, or one not newer than the stored one is counted and ignored; the
//!   newest is stored. Counted in `wangge_config_reports_total{outcome}`.
//!
//! Invariant: the document (which may hold site-broker passwords) is never logged, and leaves
//! the hub only sealed for its edge or to a caller allowed to write it.

pub mod cli;
pub mod delivery;
pub mod document;
pub mod reports;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the delivery pass runs.
pub const PASS_EVERY: Duration = Duration::from_secs(3);
/// Edges looked at in one pass (the pass pages through the rest on the next ones).
pub const PASS_EDGES_MAX: usize = 256;
/// Kicks waiting for the delivery task; a kick that finds the queue full is dropped (the next
/// pass publishes that edge anyway).
pub const KICKS_QUEUE_MAX: usize = 64;

/// Asks the delivery task to publish an edge's newest version now (after a PUT).
#[derive(Clone, Debug)]
pub struct Kick(mpsc::Sender<String>);

impl Kick {
    /// A kick and the receiver the delivery task reads.
    pub fn channel() -> (Kick, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(KICKS_QUEUE_MAX);
        (Kick(tx), rx)
    }

    /// Never waits: a full queue only means the next pass publishes it.
    pub fn edge(&self, edge_id: &str) {
        let _ = self.0.try_send(edge_id.to_string());
    }
}

/// What a report came to, the label of `wangge_config_reports_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Stored; by the edge's outcome.
    Applied,
    Refused,
    RolledBack,
    /// Ignored: not newer than the stored report (a replay, or out of order).
    Replayed,
    /// Ignored: the tag does not verify under the key of the edge the topic names.
    BadMac,
    /// Ignored: it names another edge than its topic.
    Foreign,
    /// Ignored: no such edge, or it is revoked.
    UnknownEdge,
    /// Ignored: not a report, or a field out of bounds.
    Malformed,
}

impl ReportOutcome {
    const ALL: [ReportOutcome; 8] = [
        ReportOutcome::Applied,
        ReportOutcome::Refused,
        ReportOutcome::RolledBack,
        ReportOutcome::Replayed,
        ReportOutcome::BadMac,
        ReportOutcome::Foreign,
        ReportOutcome::UnknownEdge,
        ReportOutcome::Malformed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ReportOutcome::Applied => "applied",
            ReportOutcome::Refused => "refused",
            ReportOutcome::RolledBack => "rolled_back",
            ReportOutcome::Replayed => "replayed",
            ReportOutcome::BadMac => "bad_mac",
            ReportOutcome::Foreign => "foreign",
            ReportOutcome::UnknownEdge => "unknown_edge",
            ReportOutcome::Malformed => "malformed",
        }
    }
}

/// The fleet's counters, on `/metrics`.
#[derive(Debug, Default)]
pub struct FleetMetrics {
    reports: [AtomicU64; 8],
    /// Sealed desired configurations handed to the broker link.
    pub published: AtomicU64,
}

impl FleetMetrics {
    pub fn count_report(&self, o: ReportOutcome) {
        let i = ReportOutcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        self.reports[i].fetch_add(1, Relaxed);
    }

    pub fn reports(&self, o: ReportOutcome) -> u64 {
        let i = ReportOutcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        self.reports[i].load(Relaxed)
    }

    /// Prometheus text of the fleet's counters.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        crate::prometheus::by_label(
            &mut out,
            "wangge_config_reports_total",
            "counter",
            "Configuration reports from edges, by what came of them.",
            "outcome",
            ReportOutcome::ALL.map(|o| (o.name(), self.reports(o))),
        );
        crate::prometheus::single(
            &mut out,
            "wangge_config_published_total",
            "counter",
            "Sealed desired configurations published to edges (retained).",
            self.published.load(Relaxed),
        );
        out
    }
}

/// Starts the delivery and report tasks under `sup`; the returned [`Kick`] is the API's.
pub fn spawn(
    sup: &crate::supervise::Supervisor,
    registry: std::sync::Arc<dyn crate::registry::RegistryAdmin>,
    broker: &crate::broker::BrokerHandle,
    ownership: Option<std::sync::Arc<crate::cluster::ownership::Ownership>>,
    metrics: std::sync::Arc<FleetMetrics>,
) -> Kick {
    use crate::supervise::until_cancelled;
    use std::sync::Arc;
    use tokio::sync::Mutex;
    let (kick, kicks) = Kick::channel();
    let kicks = Arc::new(Mutex::new(kicks));
    let outbound = broker.outbound();
    let (reg, m) = (registry.clone(), metrics.clone());
    sup.spawn("config_delivery", move |t| {
        let d =
            delivery::Delivery::new(reg.clone(), outbound.clone(), ownership.clone(), m.clone());
        let kicks = kicks.clone();
        until_cancelled(t, async move { d.run(&mut *kicks.lock().await).await })
    });
    if let Some(rx) = broker.take_config_reports() {
        let rx = Arc::new(Mutex::new(rx));
        sup.spawn("config_reports", move |t| {
            let (reg, m, rx) = (registry.clone(), metrics.clone(), rx.clone());
            until_cancelled(t, async move {
                reports::run(reg, m, &mut *rx.lock().await).await
            })
        });
    }
    kick
}
