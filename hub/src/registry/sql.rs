//! The statements both back ends run word for word, written once in SQLite's `?N` placeholder
//! form; [`pg`] gives PostgreSQL's `$N` form of the same text. Only what is the same in both
//! dialects is here (booleans as `true`/`false`, `CAST` rather than `::`); statements that
//! differ (e.g. `MAX` against `GREATEST`, `FOR UPDATE`) stay in the back end's entity file.
//! Each SELECT names its rows' decoder in [`super::rows`].

use super::model::*;

/// A keyset-paginated list of one entity, the same on both back ends.
pub(super) struct Listing<T> {
    /// Selects the rows whose key is `> ?1` in key order, `LIMIT ?2` (one row more than the
    /// page, which only says that there is a next page); decoded by `T`'s `FromRow`.
    pub(super) sql: &'static str,
    /// The key of a row: the cursor of the next page.
    pub(super) key: fn(&T) -> String,
}

/// `sql` with every placeholder `?N` written `$N` (PostgreSQL's form); nothing else changes.
pub(super) fn pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let placeholder = c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit());
        out.push(if placeholder { '$' } else { c });
    }
    out
}

/// What [`super::rows::component`] reads, in its order.
pub(super) const COMPONENT_COLUMNS: &str = "id, type, name, address, lat, lon, grid_cell, \
     owner_department, maintainer_department, status";

/// One component by id (`?1`).
pub(super) const COMPONENT: &str = "SELECT id, type, name, address, lat, lon, grid_cell, \
     owner_department, maintainer_department, status FROM components WHERE id = ?1";

/// A component's status (`?2`) with its update time (`?3`), where it differs.
pub(super) const SET_COMPONENT_STATUS: &str =
    "UPDATE components SET status = ?2, updated_at_ns = ?3 WHERE id = ?1 AND status <> ?2";

pub(super) const DELETE_COMPONENT: &str = "DELETE FROM components WHERE id = ?1";

/// A page of components matching the filter `f`, and the values of its placeholders.
pub(super) fn component_list(f: &ComponentFilter) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE true");
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
    sql.push_str(&format!(" ORDER BY id LIMIT {}", f.limit.max(1) + 1));
    (sql, args)
}

/// The edges, with the readings each reported lost.
pub(super) const EDGES: Listing<Edge> = Listing {
    sql: "SELECT id, name, site, online, last_seen_ns, version, backlog_readings, backlog_bytes,
            password_hash IS NOT NULL, revoked,
            (SELECT CAST(COALESCE(SUM(g.count), 0) AS BIGINT) FROM edge_gaps g
             WHERE g.edge_id = edges.id)
     FROM edges WHERE id > ?1 ORDER BY id LIMIT ?2",
    key: |e| e.id.clone(),
};

/// One edge's credentials by id (`?1`).
pub(super) const EDGE_CREDENTIALS: &str =
    "SELECT id, password_hash, mac_key, revoked FROM edges WHERE id = ?1";

/// The first refusal of its kind for an (edge, sensor): `?1` kind … `?5` when.
pub(super) const AUDIT_INGEST: &str =
    "INSERT INTO ingest_audit(kind, edge_id, sensor_id, detail, first_seen_ns, last_seen_ns)
     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
     ON CONFLICT(kind, edge_id, sensor_id) DO NOTHING";

pub(super) const REVOKE_EDGE: &str =
    "UPDATE edges SET revoked = true, online = false WHERE id = ?1";

/// One sensor by id (`?1`).
pub(super) const SENSOR: &str =
    "SELECT id, component_id, type, profile, address, interval_s, edge FROM sensors WHERE id = ?1";

/// The sensors of component `?1`.
pub(super) const COMPONENT_SENSORS: &str =
    "SELECT id, component_id, type, profile, address, interval_s, edge FROM sensors
     WHERE component_id = ?1 ORDER BY id";

/// Every sensor attached to a component, with the component's type.
pub(super) const SENSOR_CONTEXTS: &str = "SELECT s.id, s.component_id, c.type, s.interval_s
     FROM sensors s JOIN components c ON c.id = s.component_id ORDER BY s.id";

/// [`SENSOR_CONTEXTS`] of sensor `?1`.
pub(super) const SENSOR_CONTEXT: &str = "SELECT s.id, s.component_id, c.type, s.interval_s
     FROM sensors s JOIN components c ON c.id = s.component_id WHERE s.id = ?1";

/// Where the readings of sensor `?1` belong.
pub(super) const SENSOR_ASSIGNMENT: &str =
    "SELECT s.id, s.component_id, c.type, c.grid_cell, c.owner_department,
            c.maintainer_department, s.edge
     FROM sensors s LEFT JOIN components c ON c.id = s.component_id
     WHERE s.id = ?1";

/// The sensors seen but not attached; a sensor registered after it was first seen is no
/// longer unassigned.
pub(super) const UNASSIGNED: Listing<UnassignedSensor> = Listing {
    sql: "SELECT u.sensor_id, u.edge_id, u.first_seen_ns, u.last_seen_ns, u.seen_count
     FROM unassigned_sensors u
     WHERE u.sensor_id > ?1
       AND NOT EXISTS (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id
                       AND s.component_id IS NOT NULL)
     ORDER BY u.sensor_id LIMIT ?2",
    key: |u| u.sensor_id.clone(),
};

/// Every sensor attached to a component, with what data completeness needs of it.
pub(super) const COVERAGE_SENSORS: &str =
    "SELECT s.id, s.component_id, c.name, c.type, COALESCE(c.grid_cell, ''),
            COALESCE(c.owner_department, ''), COALESCE(c.maintainer_department, ''),
            COALESCE(s.edge, ''), s.interval_s, s.registered_at_ns
       FROM sensors s JOIN components c ON c.id = s.component_id";

pub(super) const GRID_CELLS: Listing<GridCell> = Listing {
    sql: "SELECT id, name, parent, lat_min, lon_min, lat_max, lon_max
          FROM grid_cells WHERE id > ?1 ORDER BY id LIMIT ?2",
    key: |g| g.id.clone(),
};

pub(super) const DEPARTMENTS: Listing<Department> = Listing {
    sql: "SELECT id, name, duty, contact FROM departments WHERE id > ?1 ORDER BY id LIMIT ?2",
    key: |d| d.id.clone(),
};

pub(super) const DEPARTMENT_EXISTS: &str = "SELECT 1 FROM departments WHERE id = ?1";

/// One department consumer's credentials by username (`?1`).
pub(super) const MQTT_USER_CREDENTIALS: &str =
    "SELECT username, department_id, password_hash, revoked FROM mqtt_users WHERE username = ?1";

/// A new department consumer: `?1` username … `?5` when.
pub(super) const ADD_MQTT_USER: &str =
    "INSERT INTO mqtt_users(username, department_id, password_hash, broker_hash, revoked,
                            created_at_ns)
     VALUES (?1, ?2, ?3, ?4, false, ?5)";

pub(super) const REVOKE_MQTT_USER: &str =
    "UPDATE mqtt_users SET revoked = true WHERE username = ?1";

pub(super) const MQTT_USERS: &str =
    "SELECT username, department_id, revoked, created_at_ns FROM mqtt_users ORDER BY username";

/// Every account the broker lets in: edges (no department) and department consumers.
pub(super) const BROKER_ACCOUNTS: &str = "SELECT id, CAST(NULL AS TEXT), broker_hash FROM edges
       WHERE NOT revoked AND broker_hash IS NOT NULL
     UNION ALL
     SELECT username, department_id, broker_hash FROM mqtt_users WHERE NOT revoked
     ORDER BY 1";

/// One API token by id (`?1`).
pub(super) const TOKEN: &str =
    "SELECT secret_hash, department, scope, revoked FROM api_tokens WHERE id = ?1";

/// A new API token: `?1` id … `?5` when.
pub(super) const ADD_TOKEN: &str =
    "INSERT INTO api_tokens(id, secret_hash, department, scope, created_at_ns)
     VALUES (?1, ?2, ?3, ?4, ?5)";

pub(super) const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked = true WHERE id = ?1";

#[cfg(test)]
mod tests {
    use super::pg;

    #[test]
    fn only_numbered_placeholders_change() {
        assert_eq!(
            pg("UPDATE t SET a = ?2 WHERE id = ?1 AND b = '?' AND c ?| d"),
            "UPDATE t SET a = $2 WHERE id = $1 AND b = '?' AND c ?| d"
        );
        assert_eq!(pg("?10 ?"), "$10 ?");
    }
}
