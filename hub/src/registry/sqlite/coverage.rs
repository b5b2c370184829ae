//! What data completeness needs of every attached sensor, in one query: the evaluation report
//! walks all of them (100k components), so one row per sensor with its component's name and
//! its edge, not one lookup per component.

use super::SqliteRegistry;
use crate::registry::{CoverageSensor, RegistryError};

impl SqliteRegistry {
    /// Every sensor attached to a component, in no particular order (the report ranks them).
    pub fn coverage_sensors(&self) -> Result<Vec<CoverageSensor>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT s.id, s.component_id, c.name, c.type, COALESCE(c.grid_cell, ''),
                        COALESCE(c.owner_department, ''), COALESCE(c.maintainer_department, ''),
                        COALESCE(s.edge, ''), s.interval_s, s.registered_at_ns
                   FROM sensors s JOIN components c ON c.id = s.component_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(CoverageSensor {
                    sensor_id: r.get(0)?,
                    component_id: r.get(1)?,
                    component_name: r.get(2)?,
                    component_type: r.get(3)?,
                    grid_cell: r.get(4)?,
                    owner_department: r.get(5)?,
                    maintainer_department: r.get(6)?,
                    edge: r.get(7)?,
                    interval_s: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
                    registered_at_ns: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .map_err(|e| match e {
            RegistryError::Db(m) => RegistryError::Db(format!("coverage sensors: {m}")),
            other => other,
        })
    }

    /// Sets when `sensor_id` was registered (records carried over from an older system, where
    /// the sensors were installed before this registry existed). False if no such sensor.
    pub fn set_registered_at(&self, sensor_id: &str, at_ns: i64) -> Result<bool, RegistryError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE sensors SET registered_at_ns = ?2 WHERE id = ?1",
                rusqlite::params![sensor_id, at_ns],
            )
            .map(|n| n > 0)
            .map_err(|e| RegistryError::Db(format!("set registered_at of {sensor_id}: {e}")))
        })
    }
}
