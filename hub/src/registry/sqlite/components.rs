//! Components (table `components`): validation against the reference tables, upsert, lists.

use super::*;

/// Checks a component against the registry's reference tables and fills class defaults.
/// Shared by the API and the CSV import so both refuse the same things with the same words.
pub fn validate_component(
    conn: &Connection,
    id: &str,
    input: &ComponentInput,
) -> Result<Component, RegistryError> {
    let code = ComponentCode::parse(id).map_err(|e| field("id", e.to_string()))?;
    if !exists(conn, "regions", "code", code.region()).map_err(db)? {
        return Err(field(
            "id",
            format!("unknown region {} (not in regions)", code.region()),
        ));
    }
    let class: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT sensor_type, default_owner FROM component_classes WHERE code = ?1",
            [code.class()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    let Some((class_type, default_owner)) = class else {
        return Err(field(
            "id",
            format!(
                "unknown component class {} (major {}, minor {}; not in component classes)",
                code.class(),
                code.major(),
                &code.class()[2..]
            ),
        ));
    };
    let component_type = match non_empty(&input.component_type) {
        None => class_type,
        Some(t) if t == class_type => t,
        Some(t) => {
            return Err(field(
                "type",
                format!("{t:?} does not match class {} ({class_type})", code.class()),
            ))
        }
    };
    let grid_cell = non_empty(&input.grid_cell);
    if let Some(g) = &grid_cell {
        if !exists(conn, "grid_cells", "id", g).map_err(db)? {
            return Err(field("grid_cell", format!("unknown grid cell {g:?}")));
        }
    }
    let owner = non_empty(&input.owner_department).or(default_owner);
    let maintainer = non_empty(&input.maintainer_department).or_else(|| owner.clone());
    for (name, dep) in [
        ("owner_department", &owner),
        ("maintainer_department", &maintainer),
    ] {
        if let Some(d) = dep {
            if !exists(conn, "departments", "id", d).map_err(db)? {
                return Err(field(name, format!("unknown department {d:?}")));
            }
        }
    }
    if let Some(lat) = input.lat {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(field("lat", format!("{lat} is outside -90..=90")));
        }
    }
    if let Some(lon) = input.lon {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(field("lon", format!("{lon} is outside -180..=180")));
        }
    }
    Ok(Component {
        id: code.as_str().to_string(),
        component_type,
        name: input.name.clone().unwrap_or_default(),
        address: input.address.clone().unwrap_or_default(),
        lat: input.lat,
        lon: input.lon,
        grid_cell,
        owner_department: owner,
        maintainer_department: maintainer,
        status: input.status.unwrap_or(ComponentStatus::Normal),
    })
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

pub(super) const COMPONENT_COLUMNS: &str =
    "id, type, name, address, lat, lon, grid_cell, owner_department, \
                                 maintainer_department, status";

pub(super) fn component_row(r: &Row<'_>) -> rusqlite::Result<Component> {
    let status = |s: String| ComponentStatus::from_name(&s).unwrap_or(ComponentStatus::Normal);
    Ok(from_columns!(
        r,
        Component {
            id,
            component_type,
            name,
            address,
            lat,
            lon,
            grid_cell,
            owner_department,
            maintainer_department,
            status => status
        }
    ))
}

impl SqliteRegistry {
    pub(super) fn list_components(
        &self,
        f: &ComponentFilter,
    ) -> Result<Page<Component>, RegistryError> {
        let mut sql = format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: &str| {
            args.push(v.to_string());
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = &f.component_type {
            push(&mut sql, " AND type = ?", t);
        }
        if let Some(g) = &f.grid_cell {
            push(&mut sql, " AND grid_cell = ?", g);
        }
        if let Some(d) = &f.department {
            push(
                &mut sql,
                " AND (owner_department = ? OR maintainer_department = ?)",
                d,
            );
        }
        if let Some(s) = f.status {
            push(&mut sql, " AND status = ?", s.name());
        }
        if let Some(a) = &f.after {
            push(&mut sql, " AND id > ?", a);
        }
        let limit = f.limit.max(1);
        sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
        let items = self.all(&sql, rusqlite::params_from_iter(args.iter()), component_row)?;
        Ok(paginate(items, limit, |c| c.id.clone()))
    }

    pub(super) fn component(&self, id: &str) -> Result<Option<Component>, RegistryError> {
        self.one(
            &format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE id = ?1"),
            id,
            component_row,
        )
    }

    pub(super) fn create_component(
        &self,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        let id = non_empty(&input.id).ok_or_else(|| field("id", "required"))?;
        self.write(|tx| {
            if exists(tx, "components", "id", &id).map_err(db)? {
                return Err(RegistryError::Conflict(format!(
                    "component {id} already exists (use PUT to change it)"
                )));
            }
            let c = validate_component(tx, &id, input)?;
            upsert_component(tx, &c)?;
            Ok(c)
        })
    }

    pub(super) fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.read(|c| Ok(validate_component(c, id, input)))?
    }

    pub(super) fn put_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<(Component, bool), RegistryError> {
        if let Some(body_id) = non_empty(&input.id) {
            if body_id != id {
                return Err(field(
                    "id",
                    format!("{body_id:?} differs from the path's id {id:?}"),
                ));
            }
        }
        self.write(|tx| {
            let existed = exists(tx, "components", "id", id).map_err(db)?;
            let c = validate_component(tx, id, input)?;
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
                "UPDATE components SET status = ?2, updated_at_ns = ?3
                 WHERE id = ?1 AND status <> ?2",
                params![id, status.name(), now_ns()],
            )
            .map_err(db)?;
            exists(tx, "components", "id", id).map_err(db)
        })
    }

    pub(super) fn delete_component(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.execute("DELETE FROM components WHERE id = ?1", [id])? > 0)
    }
}
