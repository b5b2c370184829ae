//! Sensors (tables `sensors`, `unassigned_sensors`): assignment to components, contexts for the rules.

use super::*;

impl PgRegistry {
    pub(super) fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.execute(
            "INSERT INTO unassigned_sensors(sensor_id, edge_id, first_seen_ns, last_seen_ns)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT(sensor_id) DO UPDATE SET edge_id = excluded.edge_id,
                 last_seen_ns = GREATEST(unassigned_sensors.last_seen_ns, excluded.last_seen_ns),
                 seen_count = unassigned_sensors.seen_count + 1",
            &[&sensor_id, &edge_id, &at_ns],
        )?;
        Ok(())
    }

    /// Stores a validated sensor (its references checked); true if it is new.
    pub(super) fn store_sensor(&self, sensor: &Sensor) -> Result<bool, RegistryError> {
        self.write(async |tx| {
            check(tx, &validation::sensor_references(sensor)).await?;
            let existed = exists(tx, "sensors", "id", &sensor.id).await?;
            upsert_sensor(tx, sensor, None).await?;
            Ok(!existed)
        })
    }
}

/// Inserts or replaces a sensor; `calibration` only from the seed (the API keeps what is stored).
pub(super) async fn upsert_sensor(
    tx: &Transaction<'_>,
    s: &Sensor,
    calibration: Option<&str>,
) -> Result<(), SqlError> {
    tx.execute(
        "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge,
                             calibration)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, ''))
         ON CONFLICT(id) DO UPDATE SET component_id = excluded.component_id,
             type = excluded.type, profile = excluded.profile, address = excluded.address,
             interval_s = excluded.interval_s, edge = excluded.edge,
             calibration = COALESCE($8, sensors.calibration)",
        &[
            &s.id,
            &s.component_id,
            &s.sensor_type,
            &s.profile,
            &s.address,
            &s.interval_s,
            &s.edge,
            &calibration,
        ],
    )
    .await?;
    Ok(())
}
