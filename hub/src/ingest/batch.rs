//! What a message must prove before its readings are stored: the batch's identity (topic,
//! `edge_id` and HMAC name the same unrevoked edge), a status's freshness, and per reading
//! its time window and its sensor's edge.

use super::metrics::ReadingRejectReason;
use super::metrics::RejectReason;
use super::{Accepted, UnregisteredPolicy, Worker};
use crate::broker::Inbound;
use crate::registry::SensorAssignment;
use crate::registry::{Freshness, IngestRefusal};
use crate::timeseries::StoredReading;
use protocol::uplink::{EdgeStatus, UplinkBatch, UplinkError, UPLINK_VERSION};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How often a peer speaking another protocol version is logged, per edge.
const VERSION_LOG_EVERY: Duration = Duration::from_secs(60);

impl Worker {
    pub(super) fn reject(&self, reason: RejectReason, topic: &str, detail: &str) {
        self.metrics.reject(reason);
        tracing::warn!(reason = reason.name(), %topic, %detail, "message from edge refused");
    }

    /// Refuses a message by the reason `e` names; a peer of another protocol version is
    /// counted every time but logged once a minute per edge (it sends many).
    pub(super) fn reject_uplink(&self, e: UplinkError, edge: &str, topic: &str) {
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
    pub(super) fn status(&self, edge: &str, msg: &Inbound) {
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
                self.tell_status_hook(edge, &status);
            }
            // The retained copy after a hub restart, or a QoS 1 redelivery: already recorded,
            // and still the edge's current state (the events engine may not have seen it yet).
            Ok(Freshness::Same) => {
                tracing::debug!(edge_id = edge, "status already recorded");
                self.tell_status_hook(edge, &status);
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

    fn tell_status_hook(&self, edge: &str, status: &EdgeStatus) {
        if let Some(hook) = &self.status_hook {
            hook.edge_status(edge, status.online, &status.sources_down);
        }
    }

    /// The MAC key of a known, unrevoked edge (refusals counted; a registry failure is not the
    /// edge's fault: nothing is acked, it resends).
    pub(super) fn edge_key(&self, edge: &str, topic: &str) -> Option<[u8; 32]> {
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
    pub(super) fn verify(&mut self, edge: &str, msg: &Inbound) -> Option<UplinkBatch> {
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

    pub(super) fn assignment(
        &mut self,
        sensor: &str,
        edge: &str,
        at_ns: i64,
    ) -> Option<SensorAssignment> {
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
    pub(super) fn judge_reading(
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
    pub(super) fn audit_foreign(&mut self, edge: &str, sensor: &str, owner: &str, now: i64) {
        let pair = (edge.to_string(), sensor.to_string());
        if self.audited.contains(&pair) {
            return;
        }
        let detail = format!("sensor registered to edge {owner}");
        let refusal = IngestRefusal {
            kind: "foreign_sensor",
            edge_id: edge,
            sensor_id: sensor,
            detail: &detail,
            at_ns: now,
        };
        match self.registry.audit_ingest(&refusal) {
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

    /// The readings of the accepted batches that pass the per-reading checks, mapped to their
    /// components; logs the gaps the edges report and the readings refused.
    pub(super) fn admit_readings(&mut self, accepted: &[Accepted], now: i64) -> Vec<StoredReading> {
        let mut readings =
            Vec::with_capacity(accepted.iter().map(|a| a.batch.readings.len()).sum());
        for a in accepted {
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
        readings
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
