//! What data completeness needs of every attached sensor, in one query (the SQLite registry's
//! `coverage.rs`, on PostgreSQL).

use super::PgRegistry;
use crate::registry::{CoverageSensor, RegistryError};

impl PgRegistry {
    /// Every sensor attached to a component, in no particular order (the report ranks them).
    pub fn coverage_sensors(&self) -> Result<Vec<CoverageSensor>, RegistryError> {
        self.all(super::sql::COVERAGE_SENSORS, &[])
            .map_err(|e| match e {
                RegistryError::Db(m) => RegistryError::Db(format!("coverage sensors: {m}")),
                other => other,
            })
    }
}
