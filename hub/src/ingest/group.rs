//! Group commit: the readings of every batch waiting are written to every sink at once (one
//! write, one fsync per sink for the group), then handed to the rules stage.

use super::{lock, now_ns, Accepted, BatchId, StoredForRules, StoredGroup, Worker};
use crate::registry::GapReport;
use crate::timeseries::{StoredReading, TimeSeriesSink, TsError};
use protocol::uplink::AckOutcome;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    /// Stores a group of accepted batches in every sink, then hands it to the rules stage
    /// (which acks it); acks the duplicates. If any sink fails, none of the group is acked.
    pub(super) fn commit(&mut self, accepted: Vec<Accepted>, duplicates: Vec<BatchId>) {
        let now = now_ns();
        let mut readings = self.admit_readings(&accepted, now);
        if !accepted.is_empty() {
            readings.sort_by_key(|r| r.reading.ts_ns);
            if !self.write_sinks(&readings, accepted.len()) {
                self.metrics.groups_failed.fetch_add(1, Relaxed);
                // Duplicates were stored earlier: they may still be acked.
                self.ack_all(&duplicates, AckOutcome::Duplicate);
                return;
            }
            let accepted = self.record_gaps(accepted, now);
            self.metrics.groups_committed.fetch_add(1, Relaxed);
            self.metrics
                .readings_stored
                .fetch_add(readings.len() as u64, Relaxed);
            self.metrics
                .batches_stored
                .fetch_add(accepted.len() as u64, Relaxed);
            self.record_edges_seen(&accepted, now);
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

    /// Every sink writes the group at the same time (each on its own scoped thread but the
    /// first); true only if all of them succeeded.
    fn write_sinks(&self, readings: &[StoredReading], batches: usize) -> bool {
        let results: Vec<(&'static str, u64, Result<(), TsError>)> = std::thread::scope(|scope| {
            let timed = |sink: &Arc<dyn TimeSeriesSink>| {
                let t = Instant::now();
                let res = sink.write(readings);
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
                tracing::error!(sink = name, error = %e, batches,
                    "sink write failed; batches not acked, edges will resend");
            }
        }
        !failed
    }

    /// Gaps ride on their batches: recorded before the ack (idempotently), and a batch whose
    /// gaps could not be recorded is not acked, so the edge resends it. Returns the batches
    /// whose gaps are recorded.
    fn record_gaps(&self, accepted: Vec<Accepted>, now: i64) -> Vec<Accepted> {
        let (accepted, unrecorded): (Vec<_>, Vec<_>) = accepted.into_iter().partition(|a| {
            a.batch.gaps.is_empty()
                || self
                    .registry
                    .record_gaps(&GapReport::of(&a.batch), now)
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
        accepted
    }

    /// The registry's last-seen time of each edge with a batch in the group.
    fn record_edges_seen(&self, accepted: &[Accepted], now: i64) {
        let mut seen: HashSet<&str> = HashSet::new();
        for a in accepted {
            let edge = a.batch.edge_id.as_str();
            if seen.insert(edge) {
                if let Err(e) = self.registry.record_edge_seen(edge, now) {
                    self.metrics.registry_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, edge_id = edge, "cannot record edge seen");
                }
            }
        }
    }

    /// Queues a stored group for the rules stage, which records and acks it afterwards. Waits
    /// while the queue is full (the rules are behind): the broker's inbound queue then fills
    /// and holds the edges back; nothing is dropped.
    pub(super) fn hand_to_rules(&self, stored: StoredForRules) {
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
}
