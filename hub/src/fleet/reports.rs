//! Reports: what each edge did with its desired configuration, sealed under its own key.
//!
//! Hostile input: the topic names the edge whose key must open the report, the report must
//! name that edge, its strings are bounded, and only a report newer (`ts_ns`) than the stored
//! one is kept; everything else is counted and ignored.

use super::{FleetMetrics, ReportOutcome};
use crate::broker::Inbound;
use crate::registry::{now_ns, RegistryAdmin};
use protocol::edge_config::{ConfigOutcome, ConfigReport};
use protocol::uplink::{topics, UplinkError};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Longest `applied_hash` kept (`sha256:` + 64 hex is 71).
pub const HASH_BYTES_MAX: usize = 80;
/// Longest `error` kept, bytes; a longer one is cut (at a character boundary).
pub const ERROR_BYTES_MAX: usize = 2048;

/// Handles reports until the broker link closes.
pub async fn run(
    registry: Arc<dyn RegistryAdmin>,
    metrics: Arc<FleetMetrics>,
    reports: &mut mpsc::Receiver<Inbound>,
) {
    while let Some(msg) = reports.recv().await {
        let reg = registry.clone();
        let outcome = tokio::task::spawn_blocking(move || handle(reg.as_ref(), &msg)).await;
        match outcome {
            Ok(o) => metrics.count_report(o),
            Err(e) => tracing::error!(error = %e, "configuration report: worker failed"),
        }
    }
}

/// Opens, checks and stores one report; what came of it.
pub fn handle(reg: &dyn RegistryAdmin, msg: &Inbound) -> ReportOutcome {
    let Some(edge) = topics::edge_of(&msg.topic).filter(|_| msg.topic.ends_with("/config-report"))
    else {
        return ReportOutcome::Malformed;
    };
    let creds = match reg.edge_credentials(edge) {
        Ok(Some(c)) if !c.revoked => c,
        Ok(_) => return ReportOutcome::UnknownEdge,
        Err(e) => {
            tracing::warn!(error = %e, edge_id = %edge, "configuration report: registry unavailable");
            return ReportOutcome::UnknownEdge;
        }
    };
    let mut report = match ConfigReport::open(&msg.payload, &creds.mac_key, edge) {
        Ok(r) => r,
        Err(UplinkError::BadMac) => return ReportOutcome::BadMac,
        Err(UplinkError::Foreign) => return ReportOutcome::Foreign,
        Err(_) => return ReportOutcome::Malformed,
    };
    if report.applied_hash.len() > HASH_BYTES_MAX
        || report.applied_version > i64::MAX as u64
        || report.version > i64::MAX as u64
    {
        return ReportOutcome::Malformed;
    }
    if let Some(e) = report.error.as_mut() {
        if e.len() > ERROR_BYTES_MAX {
            let mut cut = ERROR_BYTES_MAX;
            while !e.is_char_boundary(cut) {
                cut -= 1;
            }
            e.truncate(cut);
        }
    }
    match reg.record_config_report(&report, now_ns()) {
        Ok(true) => {
            tracing::info!(edge_id = %edge, applied_version = report.applied_version,
                version = report.version, outcome = report.outcome.name(),
                "configuration report");
            match report.outcome {
                ConfigOutcome::Applied => ReportOutcome::Applied,
                ConfigOutcome::Refused => ReportOutcome::Refused,
                ConfigOutcome::RolledBack => ReportOutcome::RolledBack,
            }
        }
        Ok(false) => ReportOutcome::Replayed,
        Err(e) => {
            tracing::warn!(error = %e, edge_id = %edge, "configuration report not stored");
            ReportOutcome::Malformed
        }
    }
}
