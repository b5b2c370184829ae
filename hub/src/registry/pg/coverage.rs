//! What data completeness needs of every attached sensor, in one query (the SQLite registry's
//! `coverage.rs`, on PostgreSQL).

use super::PgRegistry;
use crate::registry::{CoverageSensor, RegistryError};

impl PgRegistry {
    /// Every sensor attached to a component, in no particular order (the report ranks them).
    pub fn coverage_sensors(&self) -> Result<Vec<CoverageSensor>, RegistryError> {
        self.all(
            "SELECT s.id, s.component_id, c.name, c.type, COALESCE(c.grid_cell, ''),
                    COALESCE(c.owner_department, ''), COALESCE(c.maintainer_department, ''),
                    COALESCE(s.edge, ''), s.interval_s, s.registered_at_ns
               FROM sensors s JOIN components c ON c.id = s.component_id",
            &[],
            |r| {
                Ok(CoverageSensor {
                    sensor_id: r.try_get(0)?,
                    component_id: r.try_get(1)?,
                    component_name: r.try_get(2)?,
                    component_type: r.try_get(3)?,
                    grid_cell: r.try_get(4)?,
                    owner_department: r.try_get(5)?,
                    maintainer_department: r.try_get(6)?,
                    edge: r.try_get(7)?,
                    interval_s: u32::try_from(r.try_get::<_, i64>(8)?).unwrap_or(u32::MAX),
                    registered_at_ns: r.try_get(9)?,
                })
            },
        )
        .map_err(|e| match e {
            RegistryError::Db(m) => RegistryError::Db(format!("coverage sensors: {m}")),
            other => other,
        })
    }
}
