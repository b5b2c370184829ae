//! Alarms that know the topology: which edge each sensor reports through, which edges are
//! offline, and whose `device.offline` an offline edge holds back.
//!
//! An edge that goes offline (its last will or an offline status; or, once it has been heard
//! online, no status for the `edge_offline` rule's allowance) raises ONE `edge.offline` event,
//! keyed by the pseudo component id `edge:<edge_id>`, and the sensors behind it do not raise
//! `device.offline` while it stays offline: each one whose silence allowance runs out during the
//! outage is counted once (`wangge_events_suppressed_total{event="device.offline"}`) and the
//! event's trigger lists the sensors behind the edge when it went down. When the edge is back
//! (an online status), `edge.offline` clears and every sensor behind it starts its silence count
//! again from that moment: a sensor still silent after its normal allowance raises its own.
//!
//! A sensor whose allowance runs out while its edge is online but has not sent a status since
//! then waits for the edge's next status before raising: an edge that died without a will
//! (a clean disconnect) is declared offline by its own silence first, so its sensors are held
//! back rather than raised one by one. An edge never heard since the hub started is not
//! tracked: its sensors raise `device.offline` as they always did.
//!
//! A sensor reports through one edge: the registry's (readings of it from another edge are
//! refused as `foreign_sensor`), so "only through this edge" holds for every sensor mapped here.
//!
//! This module is the state machine; `rules::edges` applies it to the evaluator's sensors.

use crate::rules::EdgeOfflineRule;
use std::collections::{BTreeSet, HashMap};

/// The event type raised for an offline edge.
pub const EDGE_OFFLINE_EVENT: &str = "edge.offline";

/// `component_id` of an edge's events: `edge:<edge_id>` (component ids are digit codes, so the
/// two never meet).
pub const EDGE_COMPONENT_PREFIX: &str = "edge:";

/// Sensors listed by name in an edge event's trigger, at most (the count is always given).
pub const LISTED_SENSORS_MAX: usize = 1000;

/// The pseudo component id an edge's events carry.
pub fn edge_component_id(edge_id: &str) -> String {
    format!("{EDGE_COMPONENT_PREFIX}{edge_id}")
}

/// The edge an event's `component_id` names, if it is an edge's.
pub fn edge_of_component(component_id: &str) -> Option<&str> {
    component_id.strip_prefix(EDGE_COMPONENT_PREFIX)
}

/// Why an edge counts as offline (the `cause` in its event's trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineCause {
    /// Its last will, or an offline status it sent itself.
    Status,
    /// No status for the rule's allowance.
    Silence,
}

impl OfflineCause {
    pub const fn name(self) -> &'static str {
        match self {
            OfflineCause::Status => "offline_status",
            OfflineCause::Silence => "silence",
        }
    }
}

/// What a sensor whose silence allowance ran out does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceVerdict {
    /// Raise its own `device.offline`.
    Raise,
    /// Its edge is offline: held back (counted when first held).
    Suppress,
    /// Its edge has not been heard since the allowance ran out: decide on its next status.
    Wait,
}

#[derive(Debug, Default)]
struct EdgeState {
    /// Hub time of its last online status; None while offline.
    heard_ns: Option<i64>,
    /// Since when it is offline (hub time); None while online.
    offline_since_ns: Option<i64>,
    /// Sensors held back during the current outage (each counted once).
    suppressed: BTreeSet<String>,
}

/// Edges' states and the sensor → edge map (see the module doc).
#[derive(Debug)]
pub struct Topology {
    rule: Option<EdgeOfflineRule>,
    sensor_edge: HashMap<String, String>,
    /// Only edges heard (a status) or restored offline; bounded by the registered edges, since
    /// only statuses sealed with a registered edge's key reach it.
    edges: HashMap<String, EdgeState>,
    suppressed_total: u64,
    /// The previous tick and the gap before it: a much longer gap means this hub itself was
    /// not listening (stopped, starved), so no edge's silence is counted across it.
    last_tick_ns: Option<i64>,
    last_gap_ns: i64,
}

/// An edge changed state: what the evaluator turns into a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeChange {
    WentOffline {
        edge_id: String,
        since_ns: i64,
        cause: OfflineCause,
    },
    CameBack {
        edge_id: String,
        at_ns: i64,
    },
}

impl EdgeChange {
    pub fn edge_id(&self) -> &str {
        match self {
            EdgeChange::WentOffline { edge_id, .. } | EdgeChange::CameBack { edge_id, .. } => {
                edge_id
            }
        }
    }
}

impl Topology {
    /// Without a rule, nothing is tracked: no edge events, no suppression.
    pub fn new(rule: Option<EdgeOfflineRule>) -> Topology {
        Topology {
            rule,
            sensor_edge: HashMap::new(),
            edges: HashMap::new(),
            suppressed_total: 0,
            last_tick_ns: None,
            last_gap_ns: 0,
        }
    }

    pub fn rule(&self) -> Option<&EdgeOfflineRule> {
        self.rule.as_ref()
    }

    /// `sensor_id` reports through `edge_id` (from the registry, or its readings' edge).
    pub fn set_sensor_edge(&mut self, sensor_id: &str, edge_id: &str) {
        if self.rule.is_none() {
            return;
        }
        if self.sensor_edge.get(sensor_id).map(String::as_str) != Some(edge_id) {
            self.sensor_edge
                .insert(sensor_id.to_string(), edge_id.to_string());
        }
    }

    pub fn forget_sensor(&mut self, sensor_id: &str) {
        self.sensor_edge.remove(sensor_id);
    }

    /// The sensors mapped to `edge_id`, sorted.
    pub fn sensors_of(&self, edge_id: &str) -> Vec<String> {
        let mut s: Vec<String> = self
            .sensor_edge
            .iter()
            .filter(|(_, e)| *e == edge_id)
            .map(|(s, _)| s.clone())
            .collect();
        s.sort();
        s
    }

    /// Whether `edge_id` is offline now.
    pub fn is_offline(&self, edge_id: &str) -> bool {
        self.edges
            .get(edge_id)
            .is_some_and(|e| e.offline_since_ns.is_some())
    }

    /// An accepted status of `edge_id` at hub time `now_ns`.
    pub fn status(&mut self, edge_id: &str, online: bool, now_ns: i64) -> Option<EdgeChange> {
        self.rule.as_ref()?;
        let e = self.edges.entry(edge_id.to_string()).or_default();
        if online {
            e.heard_ns = Some(e.heard_ns.map_or(now_ns, |h| h.max(now_ns)));
            e.offline_since_ns.take()?;
            e.suppressed.clear();
            return Some(EdgeChange::CameBack {
                edge_id: edge_id.to_string(),
                at_ns: now_ns,
            });
        }
        e.heard_ns = None;
        if e.offline_since_ns.is_some() {
            return None;
        }
        e.offline_since_ns = Some(now_ns);
        Some(EdgeChange::WentOffline {
            edge_id: edge_id.to_string(),
            since_ns: now_ns,
            cause: OfflineCause::Status,
        })
    }

    /// The clock: edges heard online whose status is overdue go offline. After a stall of the
    /// hub (a tick gap over a third of the allowance and twice the previous gap: a `SIGSTOP`, a
    /// starved runtime), every online edge gets a fresh allowance instead: statuses could not be
    /// heard, which says nothing about the edges.
    pub fn tick(&mut self, now_ns: i64) -> Vec<EdgeChange> {
        let Some(rule) = &self.rule else {
            return Vec::new();
        };
        let gap = self.last_tick_ns.map_or(0, |t| now_ns.saturating_sub(t));
        let stalled = gap > (rule.silence_ns / 3).max(self.last_gap_ns.saturating_mul(2));
        self.last_tick_ns = Some(now_ns);
        self.last_gap_ns = gap;
        if stalled {
            tracing::warn!(
                gap_ms = gap / 1_000_000,
                "events tick was late: edges' status silence restarts from now"
            );
            for e in self.edges.values_mut() {
                if let Some(h) = &mut e.heard_ns {
                    *h = (*h).max(now_ns);
                }
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, e) in &mut self.edges {
            let Some(heard) = e.heard_ns else { continue };
            let due = heard.saturating_add(rule.silence_ns);
            if e.offline_since_ns.is_none() && now_ns > due {
                e.heard_ns = None;
                e.offline_since_ns = Some(due);
                out.push(EdgeChange::WentOffline {
                    edge_id: id.clone(),
                    since_ns: due,
                    cause: OfflineCause::Silence,
                });
            }
        }
        out.sort_by(|a, b| a.edge_id().cmp(b.edge_id()));
        out
    }

    /// What `sensor_id`, whose silence allowance ran out at `expired_ns`, does now.
    pub fn verdict(&mut self, sensor_id: &str, expired_ns: i64) -> SilenceVerdict {
        let Some(edge) = self.sensor_edge.get(sensor_id) else {
            return SilenceVerdict::Raise;
        };
        let Some(e) = self.edges.get_mut(edge) else {
            return SilenceVerdict::Raise;
        };
        if e.offline_since_ns.is_some() {
            if e.suppressed.insert(sensor_id.to_string()) {
                self.suppressed_total += 1;
            }
            return SilenceVerdict::Suppress;
        }
        match e.heard_ns {
            Some(h) if h > expired_ns => SilenceVerdict::Raise,
            _ => SilenceVerdict::Wait,
        }
    }

    /// The store holds `edge_id` offline since `since_ns` (from before a restart).
    pub fn restore_offline(&mut self, edge_id: &str, since_ns: i64) {
        if self.rule.is_none() {
            return;
        }
        let e = self.edges.entry(edge_id.to_string()).or_default();
        e.heard_ns = None;
        e.offline_since_ns.get_or_insert(since_ns);
    }

    /// Keeps only the edges in `owned` (in a cluster, the others' statuses go to their owners,
    /// which watch them from now on).
    pub fn retain_edges(&mut self, owned: &BTreeSet<String>) {
        self.edges.retain(|id, _| owned.contains(id));
    }

    /// The sensors held back during `edge_id`'s current outage.
    pub fn suppressed_of(&self, edge_id: &str) -> Vec<String> {
        self.edges
            .get(edge_id)
            .map(|e| e.suppressed.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `device.offline` events held back since start (each sensor once per outage).
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

/// `wangge_events_suppressed_total{event="device.offline"}` in the Prometheus text format.
pub fn render_prometheus(suppressed_total: u64, out: &mut String) {
    out.push_str(
        "# HELP wangge_events_suppressed_total Events held back because the edge behind them \
         is offline (each sensor once per outage).\n",
    );
    out.push_str("# TYPE wangge_events_suppressed_total counter\n");
    out.push_str(&format!(
        "wangge_events_suppressed_total{{event=\"device.offline\"}} {suppressed_total}\n"
    ));
}
