//! The JSON summary printed at exit, and the `--record` lines. Field names are a contract:
//! end-to-end tests of the edge and the hub read them.

use protocol::{Quantity, Value};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything one run sent.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub seed: u64,
    /// Wall-clock length of the run.
    pub duration_ms: u64,
    /// Scenario time covered (the sensor clocks advanced this far).
    pub sim_ms: u64,
    /// Sensor-clock origin, Unix ms: timestamps are `start_ms + scenario time (+ skew)`.
    pub start_ms: u64,
    pub interval_scale: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    pub sensors: BTreeMap<String, SensorSummary>,
    pub serial: BTreeMap<String, LineSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSummary>,
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSummary>,
}

/// What one sensor sent.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct SensorSummary {
    pub profile: String,
    /// `mqtt` or `serial`.
    pub transport: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Transmissions carrying a report of this sensor: intact, duplicated, corrupted or truncated
    /// (gridsense: gateway messages with an item of this sensor).
    pub messages: u64,
    /// Distinct (quantity, timestamp) readings a correct receiver ends up with: nothing from a
    /// corrupted or truncated frame, a duplicate once.
    pub readings: u64,
    pub seq_first: Option<u32>,
    pub seq_last: Option<u32>,
    /// Extra copies sent (same seq, same bytes).
    pub duplicates_sent: u64,
    pub frames_corrupted: u64,
    pub frames_truncated: u64,
    /// Reports sent after a later report of the same sender.
    pub reordered: u64,
    /// Reports refused by a full serial transmit queue (never sent, not counted above).
    pub dropped: u64,
    pub incidents: Vec<IncidentSummary>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentSummary {
    pub kind: String,
    /// Onset, scenario ms.
    pub at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

/// What went over one serial line. On line B a "frame" is a text line.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct LineSummary {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub baud: u32,
    /// Intact frames written, duplicates included: what a decoder yields.
    pub frames_sent: u64,
    pub frames_corrupted: u64,
    pub frames_truncated: u64,
    pub noise_bursts: u64,
    /// Bytes written, 0x00 delimiters and noise included.
    pub bytes: u64,
    pub dropped: u64,
    /// Bytes queued that no reader took before exit (0 in a healthy run).
    pub unsent_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct MqttSummary {
    /// `HOST:PORT`, or `dump:FILE` for `--mqtt-dump` alone.
    pub broker: String,
    pub published: u64,
    /// PUBACKs received (equals `published` in a healthy run).
    pub acked: u64,
    /// Messages per topic.
    pub topics: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Totals {
    pub messages: u64,
    pub readings: u64,
    pub duplicates_sent: u64,
    pub frames_corrupted: u64,
    pub frames_truncated: u64,
    pub noise_bursts: u64,
    pub reordered: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct LoadSummary {
    pub sensors: u64,
    pub dialect: String,
    pub rate_per_sensor: f64,
    pub target_msgs_per_s: f64,
    /// Broker-acknowledged messages per second of wall time.
    pub achieved_msgs_per_s: f64,
}

/// One line of the `--record` file: a reading a correct receiver must end up with.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RecordLine {
    pub sensor: String,
    pub quantity: Quantity,
    pub value: Value,
    /// `null` when the dialect sends no timestamp (the receiver stamps it).
    pub ts_ms: Option<u64>,
    pub seq: u32,
}

impl Summary {
    /// Recomputes `totals` from the sensors and lines.
    pub fn total(&mut self) {
        let mut t = Totals::default();
        for s in self.sensors.values() {
            t.messages += s.messages;
            t.readings += s.readings;
            t.duplicates_sent += s.duplicates_sent;
            t.frames_corrupted += s.frames_corrupted;
            t.frames_truncated += s.frames_truncated;
            t.reordered += s.reordered;
            t.dropped += s.dropped;
        }
        t.noise_bursts = self.serial.values().map(|l| l.noise_bursts).sum();
        self.totals = t;
    }
}
