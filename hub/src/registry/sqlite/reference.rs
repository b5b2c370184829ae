//! Reference tables (grid cells, departments) and the registry statistics.

use super::*;

impl SqliteRegistry {
    pub(super) fn stats(&self) -> Result<RegistryStats, RegistryError> {
        self.read(|c| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                c.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
            };
            let group = |sql: &str| -> rusqlite::Result<std::collections::BTreeMap<String, u64>> {
                let mut st = c.prepare(sql)?;
                let rows = st.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?;
                rows.collect()
            };
            Ok(RegistryStats {
                components: count("SELECT COUNT(*) FROM components")?,
                components_by_status: group(
                    "SELECT status, COUNT(*) FROM components GROUP BY status",
                )?,
                components_by_type: group("SELECT type, COUNT(*) FROM components GROUP BY type")?,
                sensors: count("SELECT COUNT(*) FROM sensors")?,
                sensors_unassigned: count(
                    "SELECT COUNT(*) FROM unassigned_sensors u WHERE NOT EXISTS
                     (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id AND s.component_id IS NOT NULL)",
                )?,
                edges: count("SELECT COUNT(*) FROM edges")?,
                edges_online: count("SELECT COUNT(*) FROM edges WHERE online = 1")?,
                departments: count("SELECT COUNT(*) FROM departments")?,
                grid_cells: count("SELECT COUNT(*) FROM grid_cells")?,
            })
        })
    }
}
