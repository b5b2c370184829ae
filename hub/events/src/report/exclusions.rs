//! What data completeness does not count, gathered for one report: the time a component was
//! under maintenance (its cases dispatched or in progress, including cases registered before
//! the range that were still open at its start) and the announced outages of the edge a sensor
//! reports through. Both come off the expected and the received side; the report shows both.

use super::cases::Case;
use crate::model::rfc3339;
use crate::store::{EdgeOutage, StoreError};
use crate::Events;
use serde_json::{json, Value as Json};
use std::collections::HashMap;

/// The spans a report excludes, per component (maintenance) and per edge (outages).
#[derive(Debug, Default)]
pub struct Exclusions {
    maintenance: HashMap<String, Vec<(i64, i64)>>,
    outages: HashMap<String, Vec<(i64, i64)>>,
    /// The announced outages overlapping the range, for the `exclusions` field.
    pub announced: Vec<EdgeOutage>,
}

impl Exclusions {
    /// The exclusions of `[from_ns, to_ns)`: maintenance of `cases` (those registered in the
    /// range) and of cases registered before it and still open at its start, and the live
    /// announced outages overlapping it.
    pub fn gather(
        events: &Events,
        cases: &[Case],
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Exclusions, StoreError> {
        let mut x = Exclusions::default();
        for c in cases {
            x.add_maintenance(c);
        }
        for e in events.store().open_at(from_ns)? {
            let history = events.store().history(e.id)?;
            x.add_maintenance(&Case::new(e, None, Vec::new(), &history));
        }
        x.announced = events.store().outages_between(from_ns, to_ns)?;
        for o in &x.announced {
            x.outages
                .entry(o.edge_id.clone())
                .or_default()
                .push((o.from_ns, o.until_ns));
        }
        Ok(x)
    }

    fn add_maintenance(&mut self, c: &Case) {
        if !c.maintenance.is_empty() {
            self.maintenance
                .entry(c.event.component_id.clone())
                .or_default()
                .extend(&c.maintenance);
        }
    }

    /// The maintenance spans of a component.
    pub fn maintenance(&self, component_id: &str) -> &[(i64, i64)] {
        self.maintenance
            .get(component_id)
            .map_or(&[], Vec::as_slice)
    }

    /// The announced outages of an edge.
    pub fn outages(&self, edge: &str) -> &[(i64, i64)] {
        self.outages.get(edge).map_or(&[], Vec::as_slice)
    }

    /// The `exclusions` field: what is excluded, and the announced outages among `edges` (the
    /// edges of the sensors the report's reader sees).
    pub fn to_json(&self, edges: &dyn Fn(&str) -> bool) -> Json {
        let outages: Vec<Json> = self
            .announced
            .iter()
            .filter(|o| edges(&o.edge_id))
            .map(|o| {
                json!({
                    "id": o.id,
                    "edge_id": o.edge_id,
                    "from": rfc3339(o.from_ns),
                    "until": rfc3339(o.until_ns),
                    "reason": o.reason,
                    "announced_by": o.announced_by,
                })
            })
            .collect();
        json!({
            "maintenance": "a component's cases while dispatched or in progress, including cases \
                            registered before the range",
            "edge_outages": "announced outages of the edge a sensor reports through \
                             (POST /api/v1/edges/{id}/outages)",
            "announced_outages": outages,
        })
    }
}
