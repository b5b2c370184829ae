//! Reference tables (grid cells, departments) and the registry statistics.

use super::*;

pub(super) const GRID_CELLS: Listing<GridCell> = Listing {
    sql: "SELECT id, name, parent, lat_min, lon_min, lat_max, lon_max
          FROM grid_cells WHERE id > $1 ORDER BY id LIMIT $2",
    row: |r| {
        Ok(GridCell {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            parent: r.try_get(2)?,
            lat_min: r.try_get(3)?,
            lon_min: r.try_get(4)?,
            lat_max: r.try_get(5)?,
            lon_max: r.try_get(6)?,
        })
    },
    key: |g| g.id.clone(),
};

pub(super) const DEPARTMENTS: Listing<Department> = Listing {
    sql: "SELECT id, name, duty, contact FROM departments WHERE id > $1 ORDER BY id LIMIT $2",
    row: |r| {
        Ok(Department {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            duty: r.try_get(2)?,
            contact: r.try_get(3)?,
        })
    },
    key: |d| d.id.clone(),
};

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
                    .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
                    .collect::<Result<_, SqlError>>()?;
                groups.push(group);
            }
            let components_by_type = groups.pop().unwrap_or_default();
            let components_by_status = groups.pop().unwrap_or_default();
            Ok(RegistryStats {
                components: count(&counts, 0)?,
                components_by_status,
                components_by_type,
                sensors: count(&counts, 1)?,
                sensors_unassigned: count(&counts, 2)?,
                edges: count(&counts, 3)?,
                edges_online: count(&counts, 4)?,
                departments: count(&counts, 5)?,
                grid_cells: count(&counts, 6)?,
            })
        })
    }
}
