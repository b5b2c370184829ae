//! Components (table `components`): validation against the reference tables, upsert, lists.

use super::*;
use crate::registry::validation::{validate_component, ClassRef, ReferenceLookup};

/// The reference tables as this connection (or its transaction) sees them.
impl ReferenceLookup for Connection {
    fn region_known(&self, code: &str) -> Result<bool, RegistryError> {
        exists(self, "regions", "code", code).map_err(db)
    }

    fn class(&self, code: &str) -> Result<Option<ClassRef>, RegistryError> {
        self.query_row(
            "SELECT sensor_type, default_owner FROM component_classes WHERE code = ?1",
            [code],
            |r| {
                Ok(ClassRef {
                    sensor_type: r.get(0)?,
                    default_owner: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(db)
    }

    fn grid_cell_known(&self, id: &str) -> Result<bool, RegistryError> {
        exists(self, "grid_cells", "id", id).map_err(db)
    }

    fn department_known(&self, id: &str) -> Result<bool, RegistryError> {
        exists(self, "departments", "id", id).map_err(db)
    }
}

/// [`validate_component`] against `conn`'s reference tables.
fn validated(
    conn: &Connection,
    id: &str,
    input: &ComponentInput,
) -> Result<Component, RegistryError> {
    validate_component(conn, id, input)
}

/// Inserts or replaces a validated component.
pub fn upsert_component(conn: &Connection, c: &Component) -> Result<(), RegistryError> {
    conn.execute(
        "INSERT INTO components(id, type, name, address, lat, lon, grid_cell, owner_department,
                                maintainer_department, status, updated_at_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET type = excluded.type, name = excluded.name,
             address = excluded.address, lat = excluded.lat, lon = excluded.lon,
             grid_cell = excluded.grid_cell, owner_department = excluded.owner_department,
             maintainer_department = excluded.maintainer_department, status = excluded.status,
             updated_at_ns = excluded.updated_at_ns",
        params![
            c.id,
            c.component_type,
            c.name,
            c.address,
            c.lat,
            c.lon,
            c.grid_cell,
            c.owner_department,
            c.maintainer_department,
            c.status.name(),
            now_ns()
        ],
    )
    .map_err(db)?;
    Ok(())
}

impl SqliteRegistry {
    /// Validates and stores the new component `id`; a stored one of that id is a `Conflict`.
    pub(super) fn insert_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.write(|tx| {
            if exists(tx, "components", "id", id).map_err(db)? {
                return Err(validation::component_exists(id));
            }
            let c = validated(tx, id, input)?;
            upsert_component(tx, &c)?;
            Ok(c)
        })
    }

    pub(super) fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.read(|c| Ok(validated(c, id, input)))?
    }

    /// Validates and stores component `id` over the stored one, if any; true if it is new.
    pub(super) fn replace_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<(Component, bool), RegistryError> {
        self.write(|tx| {
            let existed = exists(tx, "components", "id", id).map_err(db)?;
            let c = validated(tx, id, input)?;
            upsert_component(tx, &c)?;
            Ok((c, !existed))
        })
    }

    pub(super) fn set_component_status(
        &self,
        id: &str,
        status: ComponentStatus,
    ) -> Result<bool, RegistryError> {
        self.write(|tx| {
            tx.execute(
                sql::SET_COMPONENT_STATUS,
                params![id, status.name(), now_ns()],
            )
            .map_err(db)?;
            exists(tx, "components", "id", id).map_err(db)
        })
    }

    pub(super) fn delete_component(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.execute(sql::DELETE_COMPONENT, [id])? > 0)
    }
}
