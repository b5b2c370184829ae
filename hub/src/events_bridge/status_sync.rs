//! The component-status sync: registry `status` follows the events outbox.

use crate::registry::RegistryAdmin;
use std::sync::Arc;
use std::time::Duration;

/// Durable cursor (in the events store) of the component-status sync.
const STATUS_CURSOR: &str = "hub_component_status";
/// Event changes read per pass of the status sync.
const STATUS_PAGE: usize = 256;

/// Keeps each component's `status` in the registry equal to what its events say (normal /
/// alarm / offline / maintenance), so `GET components?status=alarm` and the dashboard see it.
/// Follows the events outbox from a durable cursor: a restart resumes where it stopped.
pub(super) async fn sync_component_status(
    events: wangge_events::Events,
    registry: Arc<dyn RegistryAdmin>,
) {
    let mut feed = events.subscribe();
    loop {
        feed.borrow_and_update();
        let (ev, reg) = (events.clone(), registry.clone());
        let pass = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let store = ev.store();
            let cursor = store.get_cursor(STATUS_CURSOR).map_err(|e| e.to_string())?;
            let changes = store
                .changes_after(cursor, STATUS_PAGE)
                .map_err(|e| e.to_string())?;
            let mut done = std::collections::HashSet::new();
            for ch in &changes {
                let id = ch.event.component_id.as_str();
                // An edge's events (`edge:<id>`) have no component in the registry.
                let edge = wangge_events::topology::edge_of_component(id).is_some();
                if !edge && done.insert(id.to_string()) {
                    let status = ev.component_status(id).map_err(|e| e.to_string())?;
                    reg.set_component_status(id, status)
                        .map_err(|e| e.to_string())?;
                }
            }
            if let Some(last) = changes.last() {
                store
                    .set_cursor(STATUS_CURSOR, last.cursor)
                    .map_err(|e| e.to_string())?;
            }
            Ok(changes.len())
        })
        .await;
        match pass {
            Ok(Ok(n)) if n == STATUS_PAGE => continue,
            Ok(Ok(_)) => {
                if feed.changed().await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "component status sync failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "component status sync task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
