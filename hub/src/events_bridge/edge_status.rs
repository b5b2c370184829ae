//! Edge statuses into the events engine's topology (`wangge_events::topology`): ingest's
//! [`ingest::EdgeStatusHook`], and the registry's sensor → edge map the engine needs.

use crate::ingest;
use crate::registry::{RegistryAdmin, RegistryError};

/// Tells the events engine of every accepted edge status (`edge.offline` raised on the last
/// will, cleared on the next online status). A store failure keeps the condition in the
/// engine, which retries it in order on its next tick.
pub(super) struct EdgeStatusFeed {
    pub(super) events: wangge_events::Events,
    /// In a cluster, the edges this hub owns: a status of another (a late one, during a
    /// hand-over) is its owner's to judge, and tracking it here would later read as silence.
    pub(super) owned: Option<tokio::sync::watch::Receiver<Vec<String>>>,
}

impl ingest::EdgeStatusHook for EdgeStatusFeed {
    fn edge_status(&self, edge_id: &str, online: bool) {
        if let Some(owned) = &self.owned {
            if !owned.borrow().iter().any(|e| e == edge_id) {
                tracing::debug!(edge_id, "status of an edge a peer owns: left to its owner");
                return;
            }
        }
        let now = wangge_events::model::now_ns();
        if let Err(e) = self.events.edge_status(edge_id, online, now) {
            tracing::error!(error = %e, edge_id, online, "cannot store the edge's offline event; retried on the next tick");
        }
    }
}

/// Maps every attached sensor to the edge the registry registered it to (one query).
pub(super) fn map_sensor_edges(
    events: &wangge_events::Events,
    registry: &dyn RegistryAdmin,
) -> Result<(), RegistryError> {
    for s in registry.coverage_sensors()? {
        if !s.edge.is_empty() {
            events.set_sensor_edge(&s.sensor_id, &s.edge);
        }
    }
    Ok(())
}

/// What sharing sees of an edge's events (`edge:<id>`): type `edge`, no grid cell, and as
/// owner (maintainer) the department that owns (maintains) every component behind the edge —
/// empty when they differ, so a department sees an edge's event only if all that edge serves is
/// its own, never one whose outage also silences another department's components. Admin sees
/// all; a `[[share]]` rule with `component_types = ["edge"]` may give it to others. None for an
/// edge with no attached sensor (then only admin sees it).
pub(super) fn edge_ctx(
    registry: &dyn RegistryAdmin,
    edge_id: &str,
) -> Option<wangge_events::model::ComponentCtx> {
    let sensors = match registry.coverage_sensors() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, edge_id, "cannot list the sensors behind an edge; its event stays hidden");
            return None;
        }
    };
    let behind: Vec<_> = sensors.into_iter().filter(|s| s.edge == edge_id).collect();
    let first = behind.first()?;
    let unanimous = |f: &dyn Fn(&crate::registry::CoverageSensor) -> &str| {
        let d = f(first);
        if behind.iter().all(|s| f(s) == d) {
            d.to_string()
        } else {
            String::new()
        }
    };
    Some(wangge_events::model::ComponentCtx {
        component_type: "edge".to_string(),
        grid_cell: String::new(),
        owner_department: unanimous(&|s| &s.owner_department),
        maintainer_department: unanimous(&|s| &s.maintainer_department),
    })
}
