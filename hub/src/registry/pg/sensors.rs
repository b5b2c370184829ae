//! Sensors (tables `sensors`, `unassigned_sensors`): assignment to components, contexts for the rules.

use super::*;

const SENSOR_SQL: &str =
    "SELECT id, component_id, type, profile, address, interval_s, edge FROM sensors";

fn sensor_row(r: &Row) -> Result<Sensor, SqlError> {
    Ok(Sensor {
        id: r.try_get(0)?,
        component_id: r.try_get(1)?,
        sensor_type: r.try_get(2)?,
        profile: r.try_get(3)?,
        address: r.try_get(4)?,
        interval_s: r.try_get(5)?,
        edge: r.try_get(6)?,
    })
}

const SENSOR_CONTEXT_SQL: &str = "SELECT s.id, s.component_id, c.type, s.interval_s
     FROM sensors s JOIN components c ON c.id = s.component_id WHERE true";

fn sensor_context_row(r: &Row) -> Result<SensorContext, SqlError> {
    Ok(SensorContext {
        sensor_id: r.try_get(0)?,
        component_id: r.try_get(1)?,
        component_type: r.try_get(2)?,
        interval_s: u32::try_from(r.try_get::<_, i64>(3)?).unwrap_or(u32::MAX),
    })
}

impl PgRegistry {
    pub(super) fn sensor_assignment(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorAssignment>, RegistryError> {
        self.one(
            "SELECT s.id, s.component_id, c.type, c.grid_cell, c.owner_department,
                    c.maintainer_department, s.edge
             FROM sensors s LEFT JOIN components c ON c.id = s.component_id
             WHERE s.id = $1",
            sensor_id,
            |r| {
                Ok(SensorAssignment {
                    sensor_id: r.try_get(0)?,
                    component_id: r.try_get(1)?,
                    component_type: r.try_get(2)?,
                    grid_cell: r.try_get(3)?,
                    owner_department: r.try_get(4)?,
                    maintainer_department: r.try_get(5)?,
                    edge_id: r.try_get(6)?,
                })
            },
        )
    }

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

    pub(super) fn sensor(&self, id: &str) -> Result<Option<Sensor>, RegistryError> {
        self.one(&format!("{SENSOR_SQL} WHERE id = $1"), id, sensor_row)
    }

    pub(super) fn put_sensor(
        &self,
        id: &str,
        input: &SensorInput,
    ) -> Result<(Sensor, bool), RegistryError> {
        let (id, interval_s) = crate::registry::validation::sensor_fields(id, input)?;
        let component = non_empty(&input.component_id);
        let edge = non_empty(&input.edge);
        self.write(async |tx| {
            if let Some(c) = &component {
                if !exists(tx, "components", "id", c).await? {
                    return Err(field("component_id", format!("unknown component {c:?}")).into());
                }
            }
            if let Some(e) = &edge {
                if !exists(tx, "edges", "id", e).await? {
                    return Err(field("edge", format!("unknown edge {e:?}")).into());
                }
            }
            let existed = exists(tx, "sensors", "id", id).await?;
            let sensor = Sensor {
                id: id.to_string(),
                component_id: component.clone(),
                sensor_type: input.sensor_type.clone().unwrap_or_default(),
                profile: input.profile.clone().unwrap_or_default(),
                address: input.address.clone().unwrap_or_default(),
                interval_s,
                edge: edge.clone(),
            };
            upsert_sensor(tx, &sensor, None).await?;
            Ok((sensor, !existed))
        })
    }

    pub(super) fn component_sensors(
        &self,
        component_id: &str,
    ) -> Result<Vec<Sensor>, RegistryError> {
        self.all(
            &format!("{SENSOR_SQL} WHERE component_id = $1 ORDER BY id"),
            &[&component_id],
            sensor_row,
        )
    }

    pub(super) fn sensor_contexts(&self) -> Result<Vec<SensorContext>, RegistryError> {
        self.all(
            &format!("{SENSOR_CONTEXT_SQL} ORDER BY s.id"),
            &[],
            sensor_context_row,
        )
    }

    pub(super) fn sensor_context(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorContext>, RegistryError> {
        self.one(
            &format!("{SENSOR_CONTEXT_SQL} AND s.id = $1"),
            sensor_id,
            sensor_context_row,
        )
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

/// A sensor registered after it was first seen is no longer unassigned.
pub(super) const UNASSIGNED: Listing<UnassignedSensor> = Listing {
    sql: "SELECT u.sensor_id, u.edge_id, u.first_seen_ns, u.last_seen_ns, u.seen_count
          FROM unassigned_sensors u
          WHERE u.sensor_id > $1
            AND NOT EXISTS (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id
                            AND s.component_id IS NOT NULL)
          ORDER BY u.sensor_id LIMIT $2",
    row: |r| {
        Ok(UnassignedSensor {
            sensor_id: r.try_get(0)?,
            edge_id: r.try_get(1)?,
            first_seen: crate::registry::format_ts(r.try_get(2)?),
            last_seen: crate::registry::format_ts(r.try_get(3)?),
            seen_count: count(r, 4)?,
        })
    },
    key: |u| u.sensor_id.clone(),
};
