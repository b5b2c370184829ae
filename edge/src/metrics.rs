//! Counters for `/metrics` (Prometheus text) and `/health`: atomics on the hot path,
//! a small bounded map only for rejects by (reason, topic).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Distinct (reason, topic) pairs kept; later ones count under topic `(other)`.
const REJECT_KEYS_MAX: usize = 1000;

/// One ingest source (an MQTT broker or a serial port).
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub name: String,
    pub kind: &'static str,
    pub up: AtomicBool,
    pub messages: AtomicU64,
    pub readings_in: AtomicU64,
    pub reconnects: AtomicU64,
}

/// Why an ack was ignored: no tag (`unsigned`), a tag that does not verify under this edge's
/// key (`bad_mac`), sealed for another edge (`foreign`), an (epoch, seq) not in flight or
/// already acked (`replayed`), another protocol version (`unknown_version`), or not decodable
/// (`malformed`).
pub const ACK_REJECT_REASONS: [&str; 6] = [
    "unsigned",
    "bad_mac",
    "foreign",
    "replayed",
    "unknown_version",
    "malformed",
];

/// Reads one per-source value for the exposition.
type SourceValue = fn(&SourceMetrics) -> u64;

#[derive(Debug, Default)]
pub struct Metrics {
    pub sources: Mutex<Vec<Arc<SourceMetrics>>>,
    /// Every Modbus slave's counters, in line and slave order.
    pub modbus: Mutex<Vec<Arc<crate::source::modbus::metrics::SlaveMetrics>>>,
    /// (reason, topic or port) → count.
    rejects: Mutex<BTreeMap<(String, String), u64>>,
    pub duplicates: AtomicU64,
    pub ts_from_edge: AtomicU64,
    pub unregistered: AtomicU64,
    pub quality_bad: AtomicU64,
    pub quality_suspect: AtomicU64,
    pub values_skipped: AtomicU64,
    pub buffer_errors: AtomicU64,
    pub syncs: AtomicU64,
    pub uplink_connected: AtomicBool,
    /// Uplink sessions established (connect + subscribe to acks): 1 + reconnects.
    pub uplink_connects: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_resent: AtomicU64,
    pub batches_acked: AtomicU64,
    pub readings_out: AtomicU64,
    pub gaps_reported: AtomicU64,
    pub acks_unexpected: AtomicU64,
    /// Desired configurations ignored because they do not open under this edge's key (forged,
    /// for another edge, or tampered with).
    pub configs_rejected: AtomicU64,
    /// Acks ignored, by reason (index into [`ACK_REJECT_REASONS`]): the buffer never moves on
    /// them.
    acks_rejected: [AtomicU64; ACK_REJECT_REASONS.len()],
    /// Which sources are down now (the status reports them; `edge_sources_down`).
    pub sources_down: crate::source::down::SourcesDown,
    /// Readings acked per second (EWMA), ×1000 for integer storage.
    pub drain_rate_milli: AtomicU64,
    pub ingest_rate_milli: AtomicU64,
}

impl Metrics {
    /// Registers one Modbus slave's counters for the exposition; a slave already registered
    /// (same line, unit and sensor: its line restarted on a config change) keeps its counters.
    pub fn modbus_slave(
        &self,
        m: crate::source::modbus::metrics::SlaveMetrics,
    ) -> Arc<crate::source::modbus::metrics::SlaveMetrics> {
        let Ok(mut v) = self.modbus.lock() else {
            return Arc::new(m);
        };
        let same = |o: &Arc<crate::source::modbus::metrics::SlaveMetrics>| {
            o.line == m.line && o.unit == m.unit && o.sensor == m.sensor
        };
        if let Some(o) = v.iter().find(|o| same(o)) {
            o.plan_requests
                .store(m.plan_requests.load(Relaxed), Relaxed);
            return o.clone();
        }
        let m = Arc::new(m);
        v.push(m.clone());
        m
    }

    /// The counters of source `name` of `kind`: the same ones again for a source restarted
    /// by a configuration change, so its counters keep counting.
    pub fn source(&self, name: &str, kind: &'static str) -> Arc<SourceMetrics> {
        let Ok(mut v) = self.sources.lock() else {
            return Arc::new(SourceMetrics::default());
        };
        if let Some(s) = v.iter().find(|s| s.name == name && s.kind == kind) {
            return s.clone();
        }
        let s = Arc::new(SourceMetrics {
            name: name.into(),
            kind,
            ..Default::default()
        });
        v.push(s.clone());
        s
    }

    pub fn reject(&self, reason: &str, topic: &str) {
        if let Ok(mut m) = self.rejects.lock() {
            let key = (reason.to_string(), topic.to_string());
            if m.len() < REJECT_KEYS_MAX || m.contains_key(&key) {
                *m.entry(key).or_default() += 1;
            } else {
                *m.entry((reason.to_string(), "(other)".into())).or_default() += 1;
            }
        }
    }

    /// Counts an ignored ack under `reason` (one of [`ACK_REJECT_REASONS`]; others count as
    /// `malformed`).
    pub fn ack_rejected(&self, reason: &str) {
        let i = ACK_REJECT_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(ACK_REJECT_REASONS.len() - 1);
        self.acks_rejected[i].fetch_add(1, Relaxed);
    }

    /// Acks ignored under `reason` so far.
    pub fn acks_rejected(&self, reason: &str) -> u64 {
        ACK_REJECT_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.acks_rejected[i].load(Relaxed))
    }

    /// Rejects summed by reason.
    pub fn rejects_by_reason(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let Ok(m) = self.rejects.lock() {
            for ((reason, _), n) in m.iter() {
                *out.entry(reason.clone()).or_default() += n;
            }
        }
        out
    }

    pub fn readings_in(&self) -> u64 {
        self.sources
            .lock()
            .map(|v| v.iter().map(|s| s.readings_in.load(Relaxed)).sum())
            .unwrap_or(0)
    }

    /// Prometheus text exposition; `extra` appends gauges owned elsewhere (buffer).
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut o = String::with_capacity(4096);
        let sources = self.sources.lock().map(|v| v.clone()).unwrap_or_default();
        // One family at a time: Prometheus wants each metric's samples together.
        let per_source: [(&str, &str, SourceValue); 4] = [
            ("edge_readings_in_total", "counter", |s| {
                s.readings_in.load(Relaxed)
            }),
            ("edge_messages_in_total", "counter", |s| {
                s.messages.load(Relaxed)
            }),
            ("edge_source_up", "gauge", |s| u64::from(s.up.load(Relaxed))),
            ("edge_source_reconnects_total", "counter", |s| {
                s.reconnects.load(Relaxed)
            }),
        ];
        for (name, kind, value) in per_source {
            let _ = writeln!(o, "# TYPE {name} {kind}");
            for s in &sources {
                let (source, k) = (&s.name, s.kind);
                let _ = writeln!(o, "{name}{{source=\"{source}\",kind=\"{k}\"}} {}", value(s));
            }
        }
        if let Ok(slaves) = self.modbus.lock() {
            crate::source::modbus::metrics::render(&slaves, &mut o);
        }
        let _ = writeln!(o, "# TYPE edge_rejects_total counter");
        if let Ok(m) = self.rejects.lock() {
            for ((reason, topic), n) in m.iter() {
                let topic = topic.replace(['"', '\\', '\n'], "_");
                let _ = writeln!(
                    o,
                    "edge_rejects_total{{reason=\"{reason}\",topic=\"{topic}\"}} {n}"
                );
            }
        }
        let counters = [
            ("edge_duplicates_dropped_total", &self.duplicates),
            ("edge_ts_from_edge_total", &self.ts_from_edge),
            ("edge_unregistered_readings_total", &self.unregistered),
            ("edge_quality_bad_total", &self.quality_bad),
            ("edge_quality_suspect_total", &self.quality_suspect),
            ("edge_values_skipped_total", &self.values_skipped),
            ("edge_buffer_errors_total", &self.buffer_errors),
            ("edge_buffer_syncs_total", &self.syncs),
            ("edge_uplink_connects_total", &self.uplink_connects),
            ("edge_batches_sent_total", &self.batches_sent),
            ("edge_batches_resent_total", &self.batches_resent),
            ("edge_batches_acked_total", &self.batches_acked),
            ("edge_readings_out_total", &self.readings_out),
            ("edge_gaps_reported_total", &self.gaps_reported),
            ("edge_acks_unexpected_total", &self.acks_unexpected),
            ("edge_configs_rejected_total", &self.configs_rejected),
        ];
        for (name, c) in counters {
            let _ = writeln!(o, "# TYPE {name} counter\n{name} {}", c.load(Relaxed));
        }
        let _ = writeln!(
            o,
            "# HELP edge_acks_rejected_total Acks ignored (the buffer did not move), by reason.\n\
             # TYPE edge_acks_rejected_total counter"
        );
        for (i, reason) in ACK_REJECT_REASONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "edge_acks_rejected_total{{reason=\"{reason}\"}} {}",
                self.acks_rejected[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# TYPE edge_uplink_connected gauge\nedge_uplink_connected {}",
            u8::from(self.uplink_connected.load(Relaxed))
        );
        let _ = writeln!(
            o,
            "# HELP edge_sources_down Sources (Modbus lines, slaves) the status reports down.\n\
             # TYPE edge_sources_down gauge\nedge_sources_down {}\n\
             # HELP edge_status_sources_dropped Entries the last status left out of its down \
             sources (over the protocol's bounds).\n\
             # TYPE edge_status_sources_dropped gauge\nedge_status_sources_dropped {}",
            self.sources_down.count(),
            self.sources_down.dropped_last.load(Relaxed)
        );
        for (name, help, v) in extra {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition is valid Prometheus text: every family announced by one `# TYPE`, its
    /// samples together right after it (a scraper rejects a family split in two).
    #[test]
    fn every_metric_family_is_typed_once_and_its_samples_stand_together() {
        let m = Metrics::default();
        m.source("site", "mqtt").reconnects.store(2, Relaxed);
        m.source("A", "serial").up.store(true, Relaxed);
        m.reject("malformed", "t/1");
        let text = m.render(&[("edge_buffer_bytes", "Bytes buffered.", 7.0)]);
        let mut seen: Vec<String> = Vec::new();
        let mut typed: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!typed.contains(&name), "{name} typed twice:\n{text}");
                typed.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap().to_string();
                assert_eq!(
                    typed.last(),
                    Some(&name),
                    "{line:?} outside its family:\n{text}"
                );
                if seen.last() != Some(&name) {
                    assert!(!seen.contains(&name), "{name} split in two:\n{text}");
                    seen.push(name);
                }
            }
        }
        assert!(text.contains("edge_source_reconnects_total{source=\"site\",kind=\"mqtt\"} 2"));
        assert!(text.contains("edge_source_up{source=\"A\",kind=\"serial\"} 1"));
    }
}
