//! Components (table `components`): validation against the reference tables, upsert, lists.

use super::*;
use crate::registry::codes::ComponentCode;
use crate::registry::validation::{validate_component, ClassRef, ReferenceLookup};

/// What validating one component asks of the reference tables, fetched for that component in
/// one round trip (validation itself is synchronous and shared with SQLite), so the answers
/// need not look at the key they are asked about.
#[derive(Debug, Default)]
struct Fetched {
    region_known: bool,
    class: Option<ClassRef>,
    grid_cell_known: bool,
    /// Those of the departments validation may ask about (the input's and the class's default
    /// owner) that exist.
    departments: Vec<String>,
}

impl ReferenceLookup for Fetched {
    fn region_known(&self, _code: &str) -> Result<bool, RegistryError> {
        Ok(self.region_known)
    }

    fn class(&self, _code: &str) -> Result<Option<ClassRef>, RegistryError> {
        Ok(self.class.clone())
    }

    fn grid_cell_known(&self, _id: &str) -> Result<bool, RegistryError> {
        Ok(self.grid_cell_known)
    }

    fn department_known(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.departments.iter().any(|d| d == id))
    }
}

/// Validates component `id` against the reference tables as `tx` sees them.
async fn validated(
    tx: &Transaction<'_>,
    id: &str,
    input: &ComponentInput,
) -> Result<Component, Failure> {
    let fetched = match ComponentCode::parse(id) {
        // Validation refuses the code before it looks anything up.
        Err(_) => Fetched::default(),
        Ok(code) => {
            let candidates = crate::registry::validation::input_departments(input);
            let r = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1),
                            c.sensor_type, c.default_owner,
                            EXISTS (SELECT 1 FROM grid_cells WHERE id = $3),
                            ARRAY(SELECT d.id::TEXT FROM departments d
                                  WHERE d.id = ANY($4) OR d.id = c.default_owner)
                     FROM (SELECT 1) one
                     LEFT JOIN component_classes c ON c.code = $2",
                    &[
                        &code.region(),
                        &code.class(),
                        &non_empty(&input.grid_cell),
                        &candidates,
                    ],
                )
                .await?;
            let sensor_type: Option<String> = r.try_get(1)?;
            Fetched {
                region_known: r.try_get(0)?,
                class: match sensor_type {
                    Some(sensor_type) => Some(ClassRef {
                        sensor_type,
                        default_owner: r.try_get(2)?,
                    }),
                    None => None,
                },
                grid_cell_known: r.try_get(3)?,
                departments: r.try_get(4)?,
            }
        }
    };
    Ok(validate_component(&fetched, id, input)?)
}

/// Inserts a validated component; with `replace`, over the stored one of its id (without, a
/// stored one is a unique violation: a `Conflict`).
pub(super) async fn store_component(
    tx: &Transaction<'_>,
    c: &Component,
    replace: bool,
) -> Result<(), SqlError> {
    const INSERT: &str =
        "INSERT INTO components(id, type, name, address, lat, lon, grid_cell, owner_department,
                                maintainer_department, status, updated_at_ns)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    const REPLACE: &str = " ON CONFLICT(id) DO UPDATE SET type = excluded.type,
             name = excluded.name, address = excluded.address, lat = excluded.lat,
             lon = excluded.lon, grid_cell = excluded.grid_cell,
             owner_department = excluded.owner_department,
             maintainer_department = excluded.maintainer_department, status = excluded.status,
             updated_at_ns = excluded.updated_at_ns";
    let sql = if replace {
        format!("{INSERT}{REPLACE}")
    } else {
        INSERT.to_string()
    };
    tx.execute(
        &sql,
        &[
            &c.id,
            &c.component_type,
            &c.name,
            &c.address,
            &c.lat,
            &c.lon,
            &c.grid_cell,
            &c.owner_department,
            &c.maintainer_department,
            &c.status.name(),
            &now_ns(),
        ],
    )
    .await?;
    Ok(())
}

impl PgRegistry {
    /// Validates and stores the new component `id`; a stored one of that id is a `Conflict`
    /// (and so is a second hub creating the same id meanwhile, on the primary key).
    pub(super) fn insert_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.write(async |tx| {
            if exists(tx, "components", "id", id).await? {
                return Err(validation::component_exists(id).into());
            }
            let c = validated(tx, id, input).await?;
            store_component(tx, &c, false).await?;
            Ok(c)
        })
    }

    pub(super) fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.write(async |tx| validated(tx, id, input).await)
    }

    /// Validates and stores component `id` over the stored one, if any; true if it is new.
    pub(super) fn replace_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<(Component, bool), RegistryError> {
        self.write(async |tx| {
            let existed = exists(tx, "components", "id", id).await?;
            let c = validated(tx, id, input).await?;
            store_component(tx, &c, true).await?;
            Ok((c, !existed))
        })
    }

    pub(super) fn set_component_status(
        &self,
        id: &str,
        status: ComponentStatus,
    ) -> Result<bool, RegistryError> {
        self.write(async |tx| {
            tx.execute(
                &sql::pg(sql::SET_COMPONENT_STATUS),
                &[&id, &status.name(), &now_ns()],
            )
            .await?;
            Ok(exists(tx, "components", "id", id).await?)
        })
    }

    pub(super) fn delete_component(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.execute(&sql::pg(sql::DELETE_COMPONENT), &[&id])? > 0)
    }
}
