//! Three bins behind one edge, for the tests of alarms that know the topology
//! (`topology.rs` for the edge, `topology_sources.rs` for its Modbus lines and slaves).

use super::S;
use protocol::uplink::Quality;
use protocol::Quantity;
use std::sync::Arc;
use wangge_events::rules::{Condition, ConditionKind, Evaluator, RuleInput, RuleSet};
use wangge_events::{ComponentDirectory, Events, EventsConfig};

pub const T0: i64 = 1_760_000_000 * S;
pub const EDGE: &str = "edge-xq-01";

/// Sensors behind `EDGE`: (sensor, component), bins reporting every 10 s (silent after 30 s).
pub const BEHIND: [(&str, &str); 3] = [("WB-1", "C-1"), ("WB-2", "C-2"), ("WB-3", "C-3")];

/// A good fill-level reading of a bin.
pub fn reading(sensor: &'static str, component: &'static str, ts_ns: i64) -> RuleInput<'static> {
    RuleInput {
        component_id: component,
        component_type: "waste_bin",
        sensor_id: sensor,
        interval_s: 10,
        quantity: Quantity::FillLevel,
        value: 10.0,
        ts_ns,
        quality: Quality::Good,
    }
}

/// `set`'s rules, the sensors of [`BEHIND`] behind `EDGE` watched from `T0`.
pub fn evaluator_behind(set: RuleSet) -> Evaluator {
    let mut ev = Evaluator::new(set);
    for (s, c) in BEHIND {
        ev.watch_sensor(s, c, "waste_bin", 10, T0);
        ev.set_sensor_edge(s, EDGE);
    }
    ev
}

/// The sensors of [`BEHIND`] watched by the store from `T0`, behind `EDGE`.
pub fn watch_behind(ev: &Events) {
    for (s, c) in BEHIND {
        ev.watch_sensor(s, c, "waste_bin", 10, T0);
        ev.set_sensor_edge(s, EDGE);
    }
}

/// The store in `dir` with the default configuration.
pub fn open(dir: &std::path::Path, directory: Arc<dyn ComponentDirectory>) -> Events {
    Events::open(&dir.join("events.db"), EventsConfig::defaults(), directory).unwrap()
}

/// (kind, component, event type) of a condition.
pub type Kind = (ConditionKind, String, String);

pub fn kinds(out: &[Condition]) -> Vec<Kind> {
    out.iter()
        .map(|c| (c.kind, c.component_id.clone(), c.event_type.clone()))
        .collect()
}
