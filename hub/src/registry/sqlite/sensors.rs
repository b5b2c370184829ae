//! Sensors (tables `sensors`, `unassigned_sensors`): assignment to components, contexts for the rules.

use super::*;

impl SqliteRegistry {
    pub(super) fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.execute(
            "INSERT INTO unassigned_sensors(sensor_id, edge_id, first_seen_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(sensor_id) DO UPDATE SET edge_id = excluded.edge_id,
                 last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns),
                 seen_count = seen_count + 1",
            params![sensor_id, edge_id, at_ns],
        )?;
        Ok(())
    }

    /// Stores a validated sensor (its references checked); true if it is new.
    pub(super) fn store_sensor(&self, sensor: &Sensor) -> Result<bool, RegistryError> {
        self.write(|tx| {
            check(tx, &validation::sensor_references(sensor))?;
            let existed = exists(tx, "sensors", "id", &sensor.id).map_err(db)?;
            tx.execute(
                "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET component_id = excluded.component_id,
                     type = excluded.type, profile = excluded.profile, address = excluded.address,
                     interval_s = excluded.interval_s, edge = excluded.edge",
                params![
                    sensor.id,
                    sensor.component_id,
                    sensor.sensor_type,
                    sensor.profile,
                    sensor.address,
                    sensor.interval_s,
                    sensor.edge
                ],
            )
            .map_err(db)?;
            Ok(!existed)
        })
    }
}
