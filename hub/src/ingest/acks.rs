//! Acks: the `ingest-rules` thread (rules, then dedup insert, then acks, in group order) and
//! the sealed `Ack` per batch on its edge's topic.

use super::metrics::IngestMetrics;
use super::{
    ledger::{BatchLedger, Commit},
    lock, now_ns, BatchId, EdgeKeys, RulesStage, StoredForRules, StoredGroup, Worker,
};
use crate::broker::Outbound;
use protocol::uplink::{topics, Ack, AckOutcome, EdgeId};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc};

/// The `ingest-rules` thread: rules, then dedup insert, then acks, group by group in order.
pub(super) struct Acker {
    pub(super) rules: Option<Box<dyn RulesStage>>,
    pub(super) dedup: Arc<Mutex<Box<dyn BatchLedger>>>,
    /// Batches handed to this thread and not yet acked (see `Worker::process`).
    pub(super) in_flight: Arc<Mutex<HashSet<BatchId>>>,
    pub(super) observers: broadcast::Sender<Arc<StoredGroup>>,
    pub(super) outbound: mpsc::Sender<Outbound>,
    pub(super) metrics: Arc<IngestMetrics>,
}

impl Acker {
    pub(super) fn run(&mut self, groups: std::sync::mpsc::Receiver<StoredForRules>) {
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
            let outcomes = self.record(&stored.batches);
            {
                let mut in_flight = lock(&self.in_flight);
                for id in &stored.batches {
                    in_flight.remove(id);
                }
            }
            for (outcome, ack) in [
                (Commit::Stored, AckOutcome::Stored),
                (Commit::Duplicate, AckOutcome::Duplicate),
            ] {
                let ids: Vec<BatchId> = stored
                    .batches
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| **o == outcome)
                    .map(|(id, _)| id.clone())
                    .collect();
                if ack == AckOutcome::Duplicate {
                    self.metrics
                        .batches_duplicate
                        .fetch_add(ids.len() as u64, Relaxed);
                }
                send_acks(&self.outbound, &self.metrics, &ids, ack, &stored.keys);
            }
        }
        tracing::info!("ingest rules stage stopped: ingest ended");
    }
}

impl Acker {
    /// Records the group's batches in the ledger: one outcome per batch. A ledger that fails
    /// decides whether the batches are still acked (single node: yes, the sinks and rules are
    /// idempotent; cluster: no, the edges keep them and resend).
    fn record(&self, batches: &[BatchId]) -> Vec<Commit> {
        let keys: Vec<_> = batches
            .iter()
            .map(|(e, ep, s)| (e.as_str(), *ep, *s))
            .collect();
        let mut ledger = lock(&self.dedup);
        match ledger.commit(&keys, now_ns()) {
            Ok(outcomes) => {
                let lost = outcomes.iter().filter(|o| **o == Commit::NotOwner).count();
                self.metrics
                    .batches_not_owned
                    .fetch_add(lost as u64, Relaxed);
                outcomes
            }
            Err(e) if ledger.ack_when_unrecorded() => {
                // The readings are stored (idempotently) and evaluated (idempotently): a
                // resend is stored and evaluated again harmlessly.
                tracing::error!(error = %e, "cannot record stored batches for dedup");
                vec![Commit::Stored; batches.len()]
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(),
                    "cannot record stored batches; not acked (the edges resend them)");
                self.metrics
                    .batches_unrecorded
                    .fetch_add(batches.len() as u64, Relaxed);
                vec![Commit::Unrecorded; batches.len()]
            }
        }
    }
}

impl Worker {
    pub(super) fn ack_all(&self, ids: &[BatchId], outcome: AckOutcome) {
        send_acks(
            &self.outbound,
            &self.metrics,
            ids,
            outcome,
            &self.keys_of(ids),
        );
    }

    pub(super) fn keys_of(&self, ids: &[BatchId]) -> EdgeKeys {
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
