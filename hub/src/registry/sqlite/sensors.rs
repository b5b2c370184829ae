//! Sensors (tables `sensors`, `unassigned_sensors`): assignment to components, contexts for the rules.

use super::*;

pub(super) const SENSOR_SQL: &str =
    "SELECT id, component_id, type, profile, address, interval_s, edge FROM sensors";

pub(super) fn sensor_row(r: &Row<'_>) -> rusqlite::Result<Sensor> {
    Ok(from_columns!(
        r,
        Sensor {
            id,
            component_id,
            sensor_type,
            profile,
            address,
            interval_s,
            edge
        }
    ))
}

pub(super) const SENSOR_CONTEXT_SQL: &str = "SELECT s.id, s.component_id, c.type, s.interval_s
     FROM sensors s JOIN components c ON c.id = s.component_id WHERE 1 = 1";

pub(super) fn sensor_context_row(r: &Row<'_>) -> rusqlite::Result<SensorContext> {
    Ok(SensorContext {
        sensor_id: r.get(0)?,
        component_id: r.get(1)?,
        component_type: r.get(2)?,
        interval_s: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
    })
}

impl SqliteRegistry {
    pub(super) fn sensor_assignment(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorAssignment>, RegistryError> {
        self.one(
            "SELECT s.id, s.component_id, c.type, c.grid_cell, c.owner_department,
                    c.maintainer_department, s.edge
             FROM sensors s LEFT JOIN components c ON c.id = s.component_id
             WHERE s.id = ?1",
            sensor_id,
            |r| {
                Ok(from_columns!(
                    r,
                    SensorAssignment {
                        sensor_id,
                        component_id,
                        component_type,
                        grid_cell,
                        owner_department,
                        maintainer_department,
                        edge_id
                    }
                ))
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
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(sensor_id) DO UPDATE SET edge_id = excluded.edge_id,
                 last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns),
                 seen_count = seen_count + 1",
            params![sensor_id, edge_id, at_ns],
        )?;
        Ok(())
    }

    pub(super) fn sensor(&self, id: &str) -> Result<Option<Sensor>, RegistryError> {
        self.one(&format!("{SENSOR_SQL} WHERE id = ?1"), id, sensor_row)
    }

    pub(super) fn put_sensor(
        &self,
        id: &str,
        input: &SensorInput,
    ) -> Result<(Sensor, bool), RegistryError> {
        let (id, interval_s) = crate::registry::validation::sensor_fields(id, input)?;
        let component = non_empty(&input.component_id);
        let edge = non_empty(&input.edge);
        self.write(|tx| {
            if let Some(c) = &component {
                if !exists(tx, "components", "id", c).map_err(db)? {
                    return Err(field("component_id", format!("unknown component {c:?}")));
                }
            }
            if let Some(e) = &edge {
                if !exists(tx, "edges", "id", e).map_err(db)? {
                    return Err(field("edge", format!("unknown edge {e:?}")));
                }
            }
            let existed = exists(tx, "sensors", "id", id).map_err(db)?;
            let sensor = Sensor {
                id: id.to_string(),
                component_id: component.clone(),
                sensor_type: input.sensor_type.clone().unwrap_or_default(),
                profile: input.profile.clone().unwrap_or_default(),
                address: input.address.clone().unwrap_or_default(),
                interval_s,
                edge: edge.clone(),
            };
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
            Ok((sensor, !existed))
        })
    }

    pub(super) fn component_sensors(
        &self,
        component_id: &str,
    ) -> Result<Vec<Sensor>, RegistryError> {
        self.all(
            &format!("{SENSOR_SQL} WHERE component_id = ?1 ORDER BY id"),
            [component_id],
            sensor_row,
        )
    }

    pub(super) fn sensor_contexts(&self) -> Result<Vec<SensorContext>, RegistryError> {
        self.all(
            &format!("{SENSOR_CONTEXT_SQL} ORDER BY s.id"),
            [],
            sensor_context_row,
        )
    }

    pub(super) fn sensor_context(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorContext>, RegistryError> {
        self.one(
            &format!("{SENSOR_CONTEXT_SQL} AND s.id = ?1"),
            sensor_id,
            sensor_context_row,
        )
    }
}

/// A sensor registered after it was first seen is no longer unassigned.
pub(super) const UNASSIGNED: Listing<UnassignedSensor> = Listing {
    sql: "SELECT u.sensor_id, u.edge_id, u.first_seen_ns, u.last_seen_ns, u.seen_count
          FROM unassigned_sensors u
          WHERE u.sensor_id > ?1
            AND NOT EXISTS (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id
                            AND s.component_id IS NOT NULL)
          ORDER BY u.sensor_id LIMIT ?2",
    row: |r| {
        Ok(UnassignedSensor {
            sensor_id: r.get(0)?,
            edge_id: r.get(1)?,
            first_seen: crate::registry::format_ts(r.get(2)?),
            last_seen: crate::registry::format_ts(r.get(3)?),
            seen_count: r.get::<_, i64>(4)?.max(0) as u64,
        })
    },
    key: |u| u.sensor_id.clone(),
};
