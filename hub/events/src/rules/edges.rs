//! The evaluator's side of `crate::topology`: edge statuses and edge silence → `edge.offline`
//! conditions, and the sensors behind an edge held back while it is offline.

use super::evaluate::{Condition, ConditionKind, Evaluator};
use super::NS_PER_S;
use crate::model::Trigger;
use crate::topology::{
    edge_component_id, EdgeChange, OfflineCause, EDGE_OFFLINE_EVENT, LISTED_SENSORS_MAX,
};
use serde_json::json;
use std::collections::BTreeSet;

impl Evaluator {
    /// `sensor_id` reports through `edge_id` (the registry's edge of the sensor).
    pub fn set_sensor_edge(&mut self, sensor_id: &str, edge_id: &str) {
        self.topology.set_sensor_edge(sensor_id, edge_id);
    }

    /// An accepted status of `edge_id`, at hub time `now_ns`: `edge.offline` raised when it says
    /// offline (its last will), cleared when it says online again.
    pub fn edge_status(&mut self, edge_id: &str, online: bool, now_ns: i64) -> Vec<Condition> {
        let change = self.topology.status(edge_id, online, now_ns);
        change.map(|c| self.edge_condition(c)).into_iter().collect()
    }

    /// Edges whose status is overdue go offline (part of [`Evaluator::tick`]).
    pub(super) fn tick_edges(&mut self, now_ns: i64) -> Vec<Condition> {
        let changes = self.topology.tick(now_ns);
        changes
            .into_iter()
            .map(|c| self.edge_condition(c))
            .collect()
    }

    /// The store holds `edge_id` offline since `since_ns` (from before a restart).
    pub fn restore_edge_offline(&mut self, edge_id: &str, since_ns: i64) {
        self.topology.restore_offline(edge_id, since_ns);
    }

    /// In a cluster: forget the edges this hub no longer owns.
    pub fn retain_edges(&mut self, owned: &BTreeSet<String>) {
        self.topology.retain_edges(owned);
    }

    /// `device.offline` events held back since start.
    pub fn suppressed_total(&self) -> u64 {
        self.topology.suppressed_total()
    }

    /// The sensors held back during `edge_id`'s current outage.
    pub fn suppressed_of(&self, edge_id: &str) -> Vec<String> {
        self.topology.suppressed_of(edge_id)
    }

    fn edge_condition(&mut self, change: EdgeChange) -> Condition {
        let severity = self
            .topology
            .rule()
            .map(|r| r.severity)
            .unwrap_or(crate::model::Severity::Major);
        let silence_s = self
            .topology
            .rule()
            .map(|r| r.silence_ns as f64 / NS_PER_S as f64);
        match change {
            EdgeChange::WentOffline {
                edge_id,
                since_ns,
                cause,
            } => {
                // The sensors it holds back: those behind it not already offline on their own.
                let behind: Vec<String> = self
                    .topology
                    .sensors_of(&edge_id)
                    .into_iter()
                    .filter(|s| self.sensors.get(s).is_some_and(|w| !w.offline))
                    .collect();
                let listed: Vec<&String> = behind.iter().take(LISTED_SENSORS_MAX).collect();
                Condition {
                    kind: ConditionKind::Raised,
                    component_id: edge_component_id(&edge_id),
                    event_type: EDGE_OFFLINE_EVENT.to_string(),
                    severity,
                    trigger: Trigger {
                        quantity: "edge_offline".to_string(),
                        value: json!({
                            "edge_id": edge_id,
                            "cause": cause.name(),
                            "sensors_behind": behind.len(),
                            "sensors": listed,
                        }),
                        threshold: (cause == OfflineCause::Silence)
                            .then_some(silence_s)
                            .flatten(),
                        ts_ns: since_ns,
                    },
                    late: false,
                }
            }
            EdgeChange::CameBack { edge_id, at_ns } => {
                // Every sensor behind it counts its silence again from now; those held back
                // raise their own `device.offline` if they stay silent for their allowance.
                for s in self.topology.sensors_of(&edge_id) {
                    if let Some(w) = self.sensors.get_mut(&s) {
                        w.suppressed = false;
                        w.last_seen_ns = w.last_seen_ns.max(at_ns);
                    }
                }
                Condition {
                    kind: ConditionKind::Cleared,
                    component_id: edge_component_id(&edge_id),
                    event_type: EDGE_OFFLINE_EVENT.to_string(),
                    severity,
                    trigger: Trigger {
                        quantity: "edge_offline".to_string(),
                        value: json!({ "edge_id": edge_id, "cause": "online_status" }),
                        threshold: None,
                        ts_ns: at_ns,
                    },
                    late: false,
                }
            }
        }
    }
}
