//! The evaluator's side of `crate::topology`: edge statuses and edge silence → `edge.offline`
//! conditions, and the sensors behind an edge held back while it is offline; the sources an
//! edge's status lists down → `source.offline` conditions, and their sensors held back.

use super::evaluate::{Condition, ConditionKind, Evaluator};
use super::NS_PER_S;
use crate::model::Trigger;
use crate::topology::{
    edge_component_id, source_component_id, EdgeChange, IgnoredCounts, OfflineCause, SourceChange,
    EDGE_OFFLINE_EVENT, LISTED_SENSORS_MAX, SOURCE_OFFLINE_EVENT,
};
use protocol::uplink::SourceDown;
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

    /// An accepted status of `edge_id` with the sources it lists down, at hub time `now_ns`:
    /// [`Evaluator::edge_status`], then (online only: an offline status says nothing of its
    /// sources) `source.offline` raised for each newly listed source and cleared for each no
    /// longer listed — in one step, so no tick decides a sensor between the two.
    pub fn edge_report(
        &mut self,
        edge_id: &str,
        online: bool,
        sources_down: &[SourceDown],
        now_ns: i64,
    ) -> Vec<Condition> {
        let mut out = self.edge_status(edge_id, online, now_ns);
        if online {
            let update = self.topology.sources_status(edge_id, sources_down, now_ns);
            // Sensors no source holds any more count their silence again from now.
            for s in update.released {
                if let Some(w) = self.sensors.get_mut(&s) {
                    w.suppressed = false;
                    w.last_seen_ns = w.last_seen_ns.max(now_ns);
                }
            }
            for c in update.changes {
                out.push(self.source_condition(c));
            }
        }
        out
    }

    /// The store holds `source` of `edge_id` down (from before a restart).
    pub fn restore_source_down(&mut self, edge_id: &str, source: &str) {
        self.topology.restore_source_down(edge_id, source);
    }

    /// The sources of `edge_id` down now, with the edge's own sensors behind each.
    pub fn sources_of(&self, edge_id: &str) -> Vec<(String, Vec<String>)> {
        self.topology.sources_of(edge_id)
    }

    /// The sensors held back during the current outage of `source` of `edge_id`.
    pub fn source_suppressed_of(&self, edge_id: &str, source: &str) -> Vec<String> {
        self.topology.source_suppressed_of(edge_id, source)
    }

    /// Entries of down-source lists not taken since start, by reason.
    pub fn source_sensors_ignored(&self) -> IgnoredCounts {
        self.topology.ignored()
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

    fn source_condition(&self, change: SourceChange) -> Condition {
        let severity = self
            .topology
            .source_rule()
            .map(|r| r.severity)
            .unwrap_or(crate::model::Severity::Major);
        match change {
            SourceChange::Down {
                edge_id,
                source,
                since_ns,
                sensors,
                ignored,
            } => {
                // The sensors it holds back: the edge's own behind it, not offline on their own.
                let behind: Vec<&String> = sensors
                    .iter()
                    .filter(|s| self.sensors.get(*s).is_some_and(|w| !w.offline))
                    .collect();
                Condition {
                    kind: ConditionKind::Raised,
                    component_id: source_component_id(&edge_id, &source),
                    event_type: SOURCE_OFFLINE_EVENT.to_string(),
                    severity,
                    trigger: Trigger {
                        quantity: "source_offline".to_string(),
                        value: json!({
                            "edge_id": edge_id,
                            "source": source,
                            "cause": "reported_down",
                            "sensors_behind": behind.len(),
                            "sensors": behind.iter().take(LISTED_SENSORS_MAX).collect::<Vec<_>>(),
                            "ignored_sensors": ignored.len(),
                            "ignored": ignored.iter().take(LISTED_SENSORS_MAX).collect::<Vec<_>>(),
                        }),
                        threshold: None,
                        ts_ns: since_ns,
                    },
                    late: false,
                }
            }
            SourceChange::Up {
                edge_id,
                source,
                at_ns,
            } => Condition {
                kind: ConditionKind::Cleared,
                component_id: source_component_id(&edge_id, &source),
                event_type: SOURCE_OFFLINE_EVENT.to_string(),
                severity,
                trigger: Trigger {
                    quantity: "source_offline".to_string(),
                    value: json!({ "edge_id": edge_id, "source": source, "cause": "reported_up" }),
                    threshold: None,
                    ts_ns: at_ns,
                },
                late: false,
            },
        }
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
