//! Edge statuses into the events engine's topology (`wangge_events::topology`): ingest's
//! [`ingest::EdgeStatusHook`], and the registry's sensor → edge map the engine needs.

use crate::ingest;
use crate::registry::{CoverageSensor, RegistryAdmin, RegistryError};
use protocol::uplink::SourceDown;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per edge, the sources its newest status lists down with the edge's own sensors behind each
/// (as the engine took them): what sharing reads for a `source.offline` event. Bounded by the
/// registered edges × `SOURCES_DOWN_MAX`; a source back up leaves it (its event then shares as
/// its edge's, which is never wider).
pub(super) type SourceSensors = Arc<Mutex<HashMap<String, Vec<(String, Vec<String>)>>>>;

/// Tells the events engine of every accepted edge status (`edge.offline` raised on the last
/// will, cleared on the next online status). A store failure keeps the condition in the
/// engine, which retries it in order on its next tick.
pub(super) struct EdgeStatusFeed {
    pub(super) events: wangge_events::Events,
    /// In a cluster, the edges this hub owns: a status of another (a late one, during a
    /// hand-over) is its owner's to judge, and tracking it here would later read as silence.
    pub(super) owned: Option<tokio::sync::watch::Receiver<Vec<String>>>,
    /// Written after every status, read by the directory.
    pub(super) sources: SourceSensors,
}

impl ingest::EdgeStatusHook for EdgeStatusFeed {
    fn edge_status(&self, edge_id: &str, online: bool, sources_down: &[SourceDown]) {
        if let Some(owned) = &self.owned {
            if !owned.borrow().iter().any(|e| e == edge_id) {
                tracing::debug!(edge_id, "status of an edge a peer owns: left to its owner");
                return;
            }
        }
        let now = wangge_events::model::now_ns();
        if let Err(e) = self.events.edge_report(edge_id, online, sources_down, now) {
            tracing::error!(error = %e, edge_id, online, "cannot store the edge's offline event; retried on the next tick");
        }
        let down = self.events.sources_of(edge_id);
        if let Ok(mut m) = self.sources.lock() {
            if down.is_empty() {
                m.remove(edge_id);
            } else {
                m.insert(edge_id.to_string(), down);
            }
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
    let behind: Vec<_> = sensors_of_edge(registry, edge_id)?;
    ctx_of(&behind)
}

/// What sharing sees of a source's events (`edge:<id>/<source>`): as [`edge_ctx`], over the
/// edge's own sensors behind that source as the engine took them from the edge's status (only
/// those the registry assigns to the edge). A source the engine does not hold down (back up,
/// or not reported since a restart) shares as its edge, never wider.
pub(super) fn source_ctx(
    registry: &dyn RegistryAdmin,
    sources: &SourceSensors,
    edge_id: &str,
    source: &str,
) -> Option<wangge_events::model::ComponentCtx> {
    let named: Option<Vec<String>> = sources.lock().ok().and_then(|m| {
        m.get(edge_id)?
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, sensors)| sensors.clone())
    });
    let Some(named) = named else {
        return edge_ctx(registry, edge_id);
    };
    let behind: Vec<_> = sensors_of_edge(registry, edge_id)?
        .into_iter()
        .filter(|s| named.contains(&s.sensor_id))
        .collect();
    ctx_of(&behind)
}

/// The registry's sensors of `edge_id` (None, logged, if the registry cannot tell).
fn sensors_of_edge(registry: &dyn RegistryAdmin, edge_id: &str) -> Option<Vec<CoverageSensor>> {
    match registry.coverage_sensors() {
        Ok(s) => Some(s.into_iter().filter(|s| s.edge == edge_id).collect()),
        Err(e) => {
            tracing::warn!(error = %e, edge_id, "cannot list the sensors behind an edge; its event stays hidden");
            None
        }
    }
}

/// Type `edge`, no grid cell, owner and maintainer each the one all of `behind` share (empty
/// when they differ); None without sensors.
fn ctx_of(behind: &[CoverageSensor]) -> Option<wangge_events::model::ComponentCtx> {
    let first = behind.first()?;
    let unanimous = |f: &dyn Fn(&CoverageSensor) -> &str| {
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
