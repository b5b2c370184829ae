//! Reference tables (grid cells, departments) and the registry statistics.

use super::*;
use wangge_events::columns::Columns;

impl PgRegistry {
    /// The counts, read in one snapshot (a repeatable-read, read-only transaction).
    pub(super) fn stats(&self) -> Result<RegistryStats, RegistryError> {
        self.write(async |tx| {
            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            let counts = tx
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM components),
                            (SELECT COUNT(*) FROM sensors),
                            (SELECT COUNT(*) FROM unassigned_sensors u WHERE NOT EXISTS
                               (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id
                                AND s.component_id IS NOT NULL)),
                            (SELECT COUNT(*) FROM edges),
                            (SELECT COUNT(*) FROM edges WHERE online),
                            (SELECT COUNT(*) FROM departments),
                            (SELECT COUNT(*) FROM grid_cells)",
                    &[],
                )
                .await?;
            let mut groups = Vec::with_capacity(2);
            for sql in [
                "SELECT status::TEXT, COUNT(*) FROM components GROUP BY status",
                "SELECT type::TEXT, COUNT(*) FROM components GROUP BY type",
            ] {
                let rows = tx.query(sql, &[]).await?;
                let group: std::collections::BTreeMap<String, u64> = rows
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.count(1)?)))
                    .collect::<Result<_, SqlError>>()?;
                groups.push(group);
            }
            let components_by_type = groups.pop().unwrap_or_default();
            let components_by_status = groups.pop().unwrap_or_default();
            Ok(RegistryStats {
                components: counts.count(0)?,
                components_by_status,
                components_by_type,
                sensors: counts.count(1)?,
                sensors_unassigned: counts.count(2)?,
                edges: counts.count(3)?,
                edges_online: counts.count(4)?,
                departments: counts.count(5)?,
                grid_cells: counts.count(6)?,
            })
        })
    }
}
