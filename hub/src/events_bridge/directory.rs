//! The registry (and the store that counts reports) as the events engine's `ComponentDirectory`.

use crate::registry::RegistryAdmin;
use crate::timeseries::report_counts::ReportCounts;
use std::sync::Arc;

/// The registry (and, for data completeness, the store that counts every hub's reports: the
/// embedded store, or VictoriaMetrics in a cluster) as the events engine sees it.
pub(super) struct RegistryDirectory {
    pub(super) registry: Arc<dyn RegistryAdmin>,
    pub(super) store: Arc<dyn ReportCounts>,
    /// The sensors behind each source an edge reports down (for `source.offline`'s sharing).
    pub(super) sources: super::edge_status::SourceSensors,
}

impl wangge_events::ComponentDirectory for RegistryDirectory {
    fn component(&self, component_id: &str) -> Option<wangge_events::model::ComponentCtx> {
        if let Some((edge, source)) = wangge_events::topology::source_of_component(component_id) {
            return super::edge_status::source_ctx(&*self.registry, &self.sources, edge, source);
        }
        if let Some(edge) = wangge_events::topology::edge_of_component(component_id) {
            return super::edge_status::edge_ctx(&*self.registry, edge);
        }
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

    /// Per attached sensor: monitored from the latest of the window's start, its registration
    /// and its first report (a sensor that never reported counts from its registration, so a
    /// dead sensor shows 0 %), up to the earlier of the window's end and now.
    fn sensor_coverage(
        &self,
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
    ) -> Vec<wangge_events::report::SensorCoverage> {
        let sensors = match self.registry.coverage_sensors() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "data completeness: cannot list sensors");
                return Vec::new();
            }
        };
        let warn = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "data completeness: cannot {what}");
        };
        let received = self
            .store
            .report_counts(from_ns, to_ns, now_ns)
            .unwrap_or_else(|e| {
                warn("count reports", &e);
                Default::default()
            });
        let first = self.store.first_reports(now_ns).unwrap_or_else(|e| {
            warn("read first reports", &e);
            Default::default()
        });
        let end = to_ns.min(now_ns);
        sensors
            .into_iter()
            .map(|s| {
                let first_report = first.get(&s.sensor_id).copied();
                let start = match (s.registered_at_ns, first_report) {
                    (Some(r), Some(f)) => r.max(f),
                    (r, f) => r.or(f).unwrap_or(from_ns),
                }
                .max(from_ns);
                let monitored = start < end;
                let expected = if monitored {
                    wangge_events::report::expected_reports(end - start, s.interval_s)
                } else {
                    0
                };
                let mut got = received.get(&s.sensor_id).copied().unwrap_or(0);
                // Reports before its registration (sent while unassigned) are not its window's.
                if got > 0 && start > from_ns && s.registered_at_ns == Some(start) {
                    got = got.saturating_sub(self.reports_between(&s.sensor_id, from_ns, start));
                }
                wangge_events::report::SensorCoverage {
                    component: wangge_events::model::ComponentCtx {
                        component_type: s.component_type,
                        grid_cell: s.grid_cell,
                        owner_department: s.owner_department,
                        maintainer_department: s.maintainer_department,
                    },
                    sensor_id: s.sensor_id,
                    component_id: s.component_id,
                    component_name: s.component_name,
                    edge: s.edge,
                    interval_s: s.interval_s,
                    monitored_from_ns: monitored.then_some(start),
                    monitored_to_ns: end,
                    received: got,
                    expected,
                }
            })
            .collect()
    }

    fn reports_per_window(
        &self,
        windows: &[(i64, i64)],
        now_ns: i64,
    ) -> Option<std::collections::HashMap<String, Vec<u64>>> {
        self.store
            .report_counts_per_window(windows, now_ns)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "data completeness: cannot count reports per day");
            })
            .ok()
    }

    fn reports_between(&self, sensor_id: &str, from_ns: i64, to_ns: i64) -> u64 {
        self.store
            .report_count(sensor_id, from_ns, to_ns)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, sensor_id, "data completeness: cannot count reports");
                0
            })
    }
}

#[cfg(test)]
mod tests;
