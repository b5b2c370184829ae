//! Counters of the ingest path, rendered for `/metrics` (Prometheus text format).

use crate::prometheus;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Why a message from an edge was refused. Every refusal is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The batch's HMAC does not verify under the key of the edge it names.
    BadMac,
    /// The topic's edge id and the message's `edge_id` differ (edge A publishing as edge B).
    WrongEdge,
    /// Not a decodable message (garbage, truncated, wrong postcard body).
    Malformed,
    /// Message version byte this hub does not know.
    UnknownVersion,
    /// The named edge has no credentials in the registry.
    UnknownEdge,
    /// The named edge's credentials were revoked.
    Revoked,
    /// More readings in one batch than `max_readings_per_batch`.
    Oversize,
    /// A topic outside the edge contract.
    UnknownTopic,
    /// A correctly sealed status not newer than the last accepted one: a replay.
    StaleStatus,
}

/// Why a single reading of an otherwise accepted batch was refused (the batch is still stored
/// and acked for its other readings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingRejectReason {
    /// The sensor is registered to another edge.
    ForeignSensor,
    /// The sensor is not registered and `[ingest] unregistered = "reject"`.
    Unregistered,
    /// Timestamp outside [now − `ts_past_max_s`, now + `ts_future_max_s`].
    TsOutOfWindow,
}

impl ReadingRejectReason {
    pub const ALL: [ReadingRejectReason; 3] = [
        ReadingRejectReason::ForeignSensor,
        ReadingRejectReason::Unregistered,
        ReadingRejectReason::TsOutOfWindow,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ReadingRejectReason::ForeignSensor => "foreign_sensor",
            ReadingRejectReason::Unregistered => "unregistered",
            ReadingRejectReason::TsOutOfWindow => "ts_out_of_window",
        }
    }
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::BadMac,
        RejectReason::WrongEdge,
        RejectReason::Malformed,
        RejectReason::UnknownVersion,
        RejectReason::UnknownEdge,
        RejectReason::Revoked,
        RejectReason::Oversize,
        RejectReason::UnknownTopic,
        RejectReason::StaleStatus,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            RejectReason::BadMac => "bad_mac",
            RejectReason::WrongEdge => "wrong_edge",
            RejectReason::Malformed => "malformed",
            RejectReason::UnknownVersion => "unknown_version",
            RejectReason::UnknownEdge => "unknown_edge",
            RejectReason::Revoked => "revoked",
            RejectReason::Oversize => "oversize",
            RejectReason::UnknownTopic => "unknown_topic",
            RejectReason::StaleStatus => "stale_status",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Write statistics of one time-series sink.
#[derive(Debug, Clone, Default)]
pub struct SinkStats {
    pub name: &'static str,
    pub writes: u64,
    pub errors: u64,
    pub latency_us_sum: u64,
    pub latency_us_max: u64,
}

/// All ingest counters. Cheap to update from the ingest thread, read by `/metrics`.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub batches_received: AtomicU64,
    pub batches_stored: AtomicU64,
    pub batches_duplicate: AtomicU64,
    /// Batches of edges a cluster peer owns (dropped before storing, or refused at the commit
    /// because the lease moved on): not acked, their owner acks the resend.
    pub batches_not_owned: AtomicU64,
    /// Stored batches the ledger could not record (cluster: PostgreSQL down): not acked.
    pub batches_unrecorded: AtomicU64,
    pub readings_stored: AtomicU64,
    /// Readings of sensors not in the registry (stored, listed for assignment).
    pub readings_unassigned: AtomicU64,
    /// Readings the edges reported as lost (`Gap.count` summed).
    pub gap_readings_reported: AtomicU64,
    pub status_received: AtomicU64,
    pub acks_sent: AtomicU64,
    /// Group commits (several batches stored in one write per sink).
    pub groups_committed: AtomicU64,
    /// Groups not stored because a sink failed; their batches are not acked (edges resend).
    pub groups_failed: AtomicU64,
    pub registry_errors: AtomicU64,
    /// Readings with a NaN or infinite value, dropped from otherwise valid batches.
    pub readings_dropped_non_finite: AtomicU64,
    /// Stored groups the rules stage evaluated (each then recorded and acked).
    pub groups_evaluated: AtomicU64,
    /// Stored groups not acked because the rules could not store an event change.
    pub groups_rules_failed: AtomicU64,
    /// Time ingest waited for the rules stage to take a stored group, µs: the rules were
    /// behind and ingest was held back (backpressure) instead of dropping the group.
    pub rules_wait_us: AtomicU64,
    /// Resent batches dropped because their first copy was stored and still waited for the
    /// rules stage (its ack answers the resend).
    pub batches_resent_in_flight: AtomicU64,
    /// Time spent in the rules stage, µs (how busy the `ingest-rules` thread is).
    pub rules_us: AtomicU64,
    rejects: [AtomicU64; 9],
    readings_rejected: [AtomicU64; 3],
    sinks: Mutex<Vec<SinkStats>>,
}

impl IngestMetrics {
    pub fn reject(&self, reason: RejectReason) {
        self.rejects[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn reading_rejected(&self, reason: ReadingRejectReason) {
        self.readings_rejected[reason as usize].fetch_add(1, Relaxed);
    }

    /// Readings refused under `reason` so far.
    pub fn readings_rejected(&self, reason: ReadingRejectReason) -> u64 {
        self.readings_rejected[reason as usize].load(Relaxed)
    }

    /// Rejections counted under `reason` so far.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejects[reason.index()].load(Relaxed)
    }

    pub(crate) fn sink_write(&self, name: &'static str, latency_us: u64, ok: bool) {
        let Ok(mut sinks) = self.sinks.lock() else {
            return;
        };
        let i = match sinks.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                sinks.push(SinkStats {
                    name,
                    ..Default::default()
                });
                sinks.len() - 1
            }
        };
        let s = &mut sinks[i];
        s.writes += 1;
        if !ok {
            s.errors += 1;
        }
        s.latency_us_sum += latency_us;
        s.latency_us_max = s.latency_us_max.max(latency_us);
    }

    /// A snapshot of the per-sink statistics.
    pub fn sinks(&self) -> Vec<SinkStats> {
        self.sinks.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Appends the Prometheus text exposition of these counters to `out`.
    // Table code: one row per metric; exempt from the 150-line function rule.
    pub fn render_prometheus(&self, out: &mut String) {
        let counters = [
            (
                "wangge_ingest_batches_received_total",
                "Uplink batches received.",
                &self.batches_received,
            ),
            (
                "wangge_ingest_batches_stored_total",
                "Batches stored (first time).",
                &self.batches_stored,
            ),
            (
                "wangge_ingest_batches_duplicate_total",
                "Resent batches acked without storing.",
                &self.batches_duplicate,
            ),
            (
                "wangge_ingest_batches_not_owned_total",
                "Batches of edges another cluster member owns, not acked by this hub.",
                &self.batches_not_owned,
            ),
            (
                "wangge_ingest_batches_unrecorded_total",
                "Stored batches the ledger could not record (not acked; the edges resend).",
                &self.batches_unrecorded,
            ),
            (
                "wangge_ingest_readings_stored_total",
                "Readings written to every sink.",
                &self.readings_stored,
            ),
            (
                "wangge_ingest_readings_unassigned_total",
                "Stored readings of sensors not in the registry.",
                &self.readings_unassigned,
            ),
            (
                "wangge_ingest_gap_readings_reported_total",
                "Readings the edges reported lost.",
                &self.gap_readings_reported,
            ),
            (
                "wangge_ingest_status_received_total",
                "Edge status messages recorded.",
                &self.status_received,
            ),
            (
                "wangge_ingest_acks_sent_total",
                "Acks published to edges.",
                &self.acks_sent,
            ),
            (
                "wangge_ingest_groups_committed_total",
                "Group commits.",
                &self.groups_committed,
            ),
            (
                "wangge_ingest_groups_failed_total",
                "Groups not stored because a sink failed (not acked).",
                &self.groups_failed,
            ),
            (
                "wangge_ingest_readings_dropped_non_finite_total",
                "Readings with NaN/infinite values dropped.",
                &self.readings_dropped_non_finite,
            ),
            (
                "wangge_ingest_registry_errors_total",
                "Registry calls that failed during ingest.",
                &self.registry_errors,
            ),
            (
                "wangge_ingest_groups_evaluated_total",
                "Stored groups evaluated by the rules stage before their ack.",
                &self.groups_evaluated,
            ),
            (
                "wangge_ingest_groups_rules_failed_total",
                "Stored groups not acked because the rules could not store an event change (the edges resend).",
                &self.groups_rules_failed,
            ),
            (
                "wangge_ingest_batches_resent_in_flight_total",
                "Resent batches dropped while their first copy waited for the rules (acked once it is done).",
                &self.batches_resent_in_flight,
            ),
        ];
        for (name, help, v) in counters {
            prometheus::single(out, name, "counter", help, v.load(Relaxed));
        }
        prometheus::single(
            out,
            "wangge_ingest_rules_wait_seconds_total",
            "counter",
            "Time ingest waited for the rules stage (backpressure: the rules were behind).",
            self.rules_wait_us.load(Relaxed) as f64 / 1e6,
        );
        prometheus::single(
            out,
            "wangge_ingest_rules_seconds_total",
            "counter",
            "Time spent evaluating stored groups in the rules stage.",
            self.rules_us.load(Relaxed) as f64 / 1e6,
        );
        prometheus::by_label(
            out,
            "wangge_ingest_rejected_total",
            "counter",
            "Messages from edges refused, by reason.",
            "reason",
            RejectReason::ALL.map(|r| (r.name(), self.rejected(r))),
        );
        prometheus::by_label(
            out,
            "wangge_ingest_readings_rejected_total",
            "counter",
            "Readings refused from accepted batches, by reason.",
            "reason",
            ReadingRejectReason::ALL.map(|r| (r.name(), self.readings_rejected(r))),
        );
        let sinks = self.sinks();
        let _ = writeln!(
            out,
            "# HELP wangge_sink_write_seconds Time of one group write per sink.\n\
             # TYPE wangge_sink_write_seconds summary"
        );
        for s in &sinks {
            let _ = writeln!(
                out,
                "wangge_sink_write_seconds_sum{{sink=\"{0}\"}} {1}\n\
                 wangge_sink_write_seconds_count{{sink=\"{0}\"}} {2}",
                s.name,
                s.latency_us_sum as f64 / 1e6,
                s.writes
            );
        }
        prometheus::by_label(
            out,
            "wangge_sink_write_seconds_max",
            "gauge",
            "Longest group write per sink.",
            "sink",
            sinks
                .iter()
                .map(|s| (&s.name, s.latency_us_max as f64 / 1e6)),
        );
        prometheus::by_label(
            out,
            "wangge_sink_write_errors_total",
            "counter",
            "Failed group writes per sink.",
            "sink",
            sinks.iter().map(|s| (&s.name, s.errors)),
        );
    }
}
