//! The registry (and the embedded store) as the events engine's `ComponentDirectory`.

use crate::registry::RegistryAdmin;
use crate::timeseries::embedded::EmbeddedStore;
use std::sync::Arc;

/// The registry (and, for data completeness, the embedded store) as the events engine sees it.
pub(super) struct RegistryDirectory {
    pub(super) registry: Arc<dyn RegistryAdmin>,
    pub(super) store: Arc<EmbeddedStore>,
}

impl wangge_events::ComponentDirectory for RegistryDirectory {
    fn component(&self, component_id: &str) -> Option<wangge_events::model::ComponentCtx> {
        let c = self.registry.component(component_id).ok()??;
        Some(wangge_events::model::ComponentCtx {
            component_type: c.component_type,
            grid_cell: c.grid_cell.unwrap_or_default(),
            owner_department: c.owner_department.unwrap_or_default(),
            maintainer_department: c.maintainer_department.unwrap_or_default(),
        })
    }

    /// Dispatch targets must be registered departments.
    fn department_exists(&self, department: &str) -> bool {
        self.registry
            .department_exists(department)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot look a department up; refusing the dispatch");
                false
            })
    }

    /// Per component: reports received (distinct timestamps of its sensors in the embedded
    /// store) vs expected (the part of the period up to now divided by each sensor's interval).
    fn reading_counts(&self, from_ns: i64, to_ns: i64) -> Vec<wangge_events::ReadingCount> {
        let sensors = match self.registry.sensor_contexts() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "data completeness: cannot list sensors");
                return Vec::new();
            }
        };
        let received = self
            .store
            .report_counts(from_ns, to_ns)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "data completeness: cannot count readings");
                Default::default()
            });
        let span_ns = to_ns
            .min(crate::registry::now_ns())
            .saturating_sub(from_ns)
            .max(0);
        let mut per_component: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for s in sensors {
            let expected = if s.interval_s == 0 {
                0
            } else {
                u64::try_from(span_ns / (i64::from(s.interval_s) * 1_000_000_000)).unwrap_or(0)
            };
            let e = per_component.entry(s.component_id).or_default();
            e.0 += received.get(&s.sensor_id).copied().unwrap_or(0);
            e.1 += expected;
        }
        per_component
            .into_iter()
            .map(
                |(component_id, (received, expected))| wangge_events::ReadingCount {
                    component_id,
                    received,
                    expected,
                },
            )
            .collect()
    }
}
