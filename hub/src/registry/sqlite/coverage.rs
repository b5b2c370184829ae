//! What data completeness needs of every attached sensor, in one query: the evaluation report
//! walks all of them (100k components), so one row per sensor with its component's name and
//! its edge, not one lookup per component.

use super::SqliteRegistry;
use crate::registry::{CoverageSensor, RegistryError};

impl SqliteRegistry {
    /// Every sensor attached to a component, in no particular order (the report ranks them).
    pub fn coverage_sensors(&self) -> Result<Vec<CoverageSensor>, RegistryError> {
        self.all(super::sql::COVERAGE_SENSORS, &[])
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
