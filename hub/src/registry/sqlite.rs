//! The registry on SQLite in WAL mode: one writer connection, a few reader connections.
//!
//! WAL lets readers (API lists, the ingest path's lookups) run while an import or an edge
//! status update writes. Every method is synchronous; async callers use `spawn_blocking`.

use super::codes::ComponentCode;
use super::model::*;
use super::{
    now_ns, secrets, BrokerAccount, EdgeCredentials, Freshness, MqttUser, MqttUserCredentials,
    RegistryAdmin, RegistryError, RegistryStore, SensorAssignment, StatusMark,
};
use protocol::uplink::EdgeStatus;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Reader connections kept open; the writer is separate.
const READERS: usize = 3;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT_MS: u64 = 5_000;

pub struct SqliteRegistry {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// (id, password_hash, mac_key, revoked) of an `edges` row.
type EdgeRow = (String, Option<String>, Option<Vec<u8>>, bool);

mod mqtt_users;

fn db(e: rusqlite::Error) -> RegistryError {
    RegistryError::Db(e.to_string())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl SqliteRegistry {
    /// Opens (creating if needed) the registry at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteRegistry, RegistryError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| RegistryError::Db(format!("create {}: {e}", dir.display())))?;
            }
        }
        let mut writer = Connection::open(path).map_err(db)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        configure(&writer).map_err(db)?;
        super::migrations::apply(&mut writer).map_err(db)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(db)?;
            configure(&r).map_err(db)?;
            readers.push(Mutex::new(r));
        }
        Ok(SqliteRegistry {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        self.read(|c| {
            c.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
        })
    }

    /// One keyset page: `sql` selects the rows whose key is `> ?1` in key order, `LIMIT ?2`
    /// (one row more than `limit`, which only says that there is a next page).
    fn page<T>(
        &self,
        sql: &str,
        after: Option<&str>,
        limit: usize,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, RegistryError> {
        let limit = limit.max(1);
        let items = self.read(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(params![after.unwrap_or(""), (limit + 1) as i64], row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(paginate(items, limit, key))
    }

    /// Whether department `id` is registered (the events engine's dispatch check).
    pub fn department_exists(&self, id: &str) -> Result<bool, RegistryError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM departments WHERE id = ?1")?
                .exists(params![id])
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, RegistryError> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return f(&conn).map_err(db);
            }
        }
        let conn = lock(&self.readers[start % self.readers.len()]);
        f(&conn).map_err(db)
    }

    /// Runs `f` in one write transaction; rolled back if `f` fails.
    pub fn write<T, E: From<RegistryError>>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }
}

const SENSOR_SQL: &str =
    "SELECT id, component_id, type, profile, address, interval_s, edge FROM sensors";

fn sensor_row(r: &Row<'_>) -> rusqlite::Result<Sensor> {
    Ok(Sensor {
        id: r.get(0)?,
        component_id: r.get(1)?,
        sensor_type: r.get(2)?,
        profile: r.get(3)?,
        address: r.get(4)?,
        interval_s: r.get(5)?,
        edge: r.get(6)?,
    })
}

const SENSOR_CONTEXT_SQL: &str = "SELECT s.id, s.component_id, c.type, s.interval_s
     FROM sensors s JOIN components c ON c.id = s.component_id WHERE 1 = 1";

fn sensor_context_row(r: &Row<'_>) -> rusqlite::Result<SensorContext> {
    Ok(SensorContext {
        sensor_id: r.get(0)?,
        component_id: r.get(1)?,
        component_type: r.get(2)?,
        interval_s: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
    })
}

/// Cuts a `limit + 1` query result to a page; the extra row only says there is a next page.
fn paginate<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

/// A poisoned lock only means another thread panicked mid-statement; SQLite rolled that back.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn field(field: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn exists(conn: &Connection, table: &str, key: &str, value: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        &format!("SELECT 1 FROM {table} WHERE {key} = ?1"),
        [value],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

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

const COMPONENT_COLUMNS: &str = "id, type, name, address, lat, lon, grid_cell, owner_department, \
                                 maintainer_department, status";

fn component_row(r: &Row<'_>) -> rusqlite::Result<Component> {
    let status: String = r.get(9)?;
    Ok(Component {
        id: r.get(0)?,
        component_type: r.get(1)?,
        name: r.get(2)?,
        address: r.get(3)?,
        lat: r.get(4)?,
        lon: r.get(5)?,
        grid_cell: r.get(6)?,
        owner_department: r.get(7)?,
        maintainer_department: r.get(8)?,
        status: ComponentStatus::from_name(&status).unwrap_or(ComponentStatus::Normal),
    })
}

fn edge_row(r: &Row<'_>) -> rusqlite::Result<Edge> {
    let last_seen: Option<i64> = r.get(4)?;
    Ok(Edge {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        online: r.get(3)?,
        last_seen: last_seen.map(super::format_ts),
        version: r.get(5)?,
        backlog_readings: r.get::<_, i64>(6)?.max(0) as u64,
        backlog_bytes: r.get::<_, i64>(7)?.max(0) as u64,
        has_credentials: r.get(8)?,
        revoked: r.get(9)?,
        readings_lost: r.get::<_, i64>(10)?.max(0) as u64,
    })
}

impl RegistryStore for SqliteRegistry {
    fn sensor_assignment(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorAssignment>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT s.id, s.component_id, c.type, c.grid_cell, c.owner_department,
                        c.maintainer_department, s.edge
                 FROM sensors s LEFT JOIN components c ON c.id = s.component_id
                 WHERE s.id = ?1",
            )?
            .query_row([sensor_id], |r| {
                Ok(SensorAssignment {
                    sensor_id: r.get(0)?,
                    component_id: r.get(1)?,
                    component_type: r.get(2)?,
                    grid_cell: r.get(3)?,
                    owner_department: r.get(4)?,
                    maintainer_department: r.get(5)?,
                    edge_id: r.get(6)?,
                })
            })
            .optional()
        })
    }

    fn edge_credentials(&self, edge_id: &str) -> Result<Option<EdgeCredentials>, RegistryError> {
        let row: Option<EdgeRow> = self.read(|c| {
            c.prepare_cached("SELECT id, password_hash, mac_key, revoked FROM edges WHERE id = ?1")?
                .query_row([edge_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
        })?;
        let Some((edge_id, Some(password_hash), Some(key), revoked)) = row else {
            return Ok(None);
        };
        let mac_key: [u8; 32] = key
            .try_into()
            .map_err(|_| RegistryError::Db(format!("edge {edge_id}: mac_key is not 32 bytes")))?;
        Ok(Some(EdgeCredentials {
            edge_id,
            password_hash,
            mac_key,
            revoked,
        }))
    }

    fn record_edge_status(&self, s: &EdgeStatus) -> Result<Freshness, RegistryError> {
        self.write(|tx| {
            let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = tx
                .query_row(
                    "SELECT epoch, status_counter, status_will_pending FROM edges WHERE id = ?1",
                    [s.edge_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(db)?;
            let Some((epoch, counter, will)) = row else {
                return Err(RegistryError::NotFound(format!("edge {}", s.edge_id)));
            };
            // Counters are stored as i64 bit patterns; no status was accepted while NULL.
            let last = epoch.zip(counter).map(|(e, c)| StatusMark {
                epoch: e as u64,
                counter: c as u64,
                will_pending: will.map(|w| w as u64),
            });
            let fresh = StatusMark::judge(last.as_ref(), s);
            if !matches!(fresh, Freshness::Fresh | Freshness::AnnouncedWill) {
                return Ok(fresh);
            }
            let Some(mark) = StatusMark::after(last.as_ref(), s, fresh) else {
                return Ok(fresh);
            };
            tx.execute(
                "UPDATE edges SET online = ?2, version = ?3, epoch = ?4, backlog_readings = ?5,
                        backlog_bytes = ?6, oldest_unacked_ns = ?7, status_at_ns = ?8,
                        last_seen_ns = MAX(COALESCE(last_seen_ns, 0), ?9),
                        status_counter = ?10, status_will_pending = ?11
                 WHERE id = ?1",
                params![
                    s.edge_id.as_str(),
                    s.online,
                    s.version,
                    mark.epoch as i64,
                    s.backlog_readings.min(i64::MAX as u64) as i64,
                    s.backlog_bytes.min(i64::MAX as u64) as i64,
                    s.oldest_unacked_ns,
                    s.ts_ns,
                    now_ns(),
                    mark.counter as i64,
                    mark.will_pending.map(|w| w as i64),
                ],
            )
            .map_err(db)?;
            Ok(fresh)
        })
    }

    fn audit_ingest(
        &self,
        kind: &str,
        edge_id: &str,
        sensor_id: &str,
        detail: &str,
        at_ns: i64,
    ) -> Result<bool, RegistryError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO ingest_audit(kind, edge_id, sensor_id, detail, first_seen_ns,
                                              last_seen_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT(kind, edge_id, sensor_id) DO NOTHING",
                    params![kind, edge_id, sensor_id, detail, at_ns],
                )
                .map_err(db)?;
            if n == 0 {
                tx.execute(
                    "UPDATE ingest_audit SET last_seen_ns = MAX(last_seen_ns, ?4),
                            seen_count = seen_count + 1
                     WHERE kind = ?1 AND edge_id = ?2 AND sensor_id = ?3",
                    params![kind, edge_id, sensor_id, at_ns],
                )
                .map_err(db)?;
            }
            Ok(n > 0)
        })
    }

    fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE edges SET last_seen_ns = MAX(COALESCE(last_seen_ns, 0), ?2), online = 1
                 WHERE id = ?1",
                params![edge_id, at_ns],
            )
            .map_err(db)
        })?;
        Ok(())
    }

    fn record_gaps(
        &self,
        edge_id: &str,
        epoch: u64,
        seq: u64,
        gaps: &[protocol::uplink::Gap],
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.write(|tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO edge_gaps(edge_id, epoch, seq, sensor_id, from_ns, to_ns,
                         count, reason, received_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(db)?;
            for g in gaps {
                let reason = match g.reason {
                    protocol::uplink::GapReason::BufferFull => "buffer_full",
                    protocol::uplink::GapReason::Recovery => "recovery",
                };
                st.execute(params![
                    edge_id,
                    epoch as i64,
                    seq as i64,
                    g.sensor.as_str(),
                    g.from_ns,
                    g.to_ns,
                    i64::try_from(g.count).unwrap_or(i64::MAX),
                    reason,
                    at_ns
                ])
                .map_err(db)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO unassigned_sensors(sensor_id, edge_id, first_seen_ns, last_seen_ns)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(sensor_id) DO UPDATE SET edge_id = excluded.edge_id,
                     last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns),
                     seen_count = seen_count + 1",
                params![sensor_id, edge_id, at_ns],
            )
            .map_err(db)
        })?;
        Ok(())
    }

    fn mqtt_user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<MqttUserCredentials>, RegistryError> {
        self.mqtt_user_credentials_impl(username)
    }

    fn broker_accounts(&self) -> Result<Vec<BrokerAccount>, RegistryError> {
        self.broker_accounts_impl()
    }
}

impl RegistryAdmin for SqliteRegistry {
    fn list_components(&self, f: &ComponentFilter) -> Result<Page<Component>, RegistryError> {
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
        let mut items = self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), component_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|c| c.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn component(&self, id: &str) -> Result<Option<Component>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COMPONENT_COLUMNS} FROM components WHERE id = ?1"
            ))?
            .query_row([id], component_row)
            .optional()
        })
    }

    fn create_component(&self, input: &ComponentInput) -> Result<Component, RegistryError> {
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

    fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.read(|c| Ok(validate_component(c, id, input)))?
    }

    fn put_component(
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

    fn set_component_status(
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

    fn delete_component(&self, id: &str) -> Result<bool, RegistryError> {
        self.write(|tx| {
            tx.execute("DELETE FROM components WHERE id = ?1", [id])
                .map(|n| n > 0)
                .map_err(db)
        })
    }

    fn sensor(&self, id: &str) -> Result<Option<Sensor>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(&format!("{SENSOR_SQL} WHERE id = ?1"))?
                .query_row([id], sensor_row)
                .optional()
        })
    }

    fn put_sensor(&self, id: &str, input: &SensorInput) -> Result<(Sensor, bool), RegistryError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == '/') {
            return Err(field(
                "id",
                "1 to 64 characters, no '/' or control characters",
            ));
        }
        let interval_s = input.interval_s.unwrap_or(60);
        if interval_s <= 0 {
            return Err(field(
                "interval_s",
                format!("{interval_s} is not a positive number of seconds"),
            ));
        }
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

    fn component_sensors(&self, component_id: &str) -> Result<Vec<Sensor>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, component_id, type, profile, address, interval_s, edge
                 FROM sensors WHERE component_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([component_id], |r| {
                Ok(Sensor {
                    id: r.get(0)?,
                    component_id: r.get(1)?,
                    sensor_type: r.get(2)?,
                    profile: r.get(3)?,
                    address: r.get(4)?,
                    interval_s: r.get(5)?,
                    edge: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    fn list_edges(&self, after: Option<&str>, limit: usize) -> Result<Page<Edge>, RegistryError> {
        self.page(
            "SELECT id, name, site, online, last_seen_ns, version, backlog_readings,
                        backlog_bytes, password_hash IS NOT NULL, revoked,
                        (SELECT COALESCE(SUM(g.count), 0) FROM edge_gaps g WHERE g.edge_id = edges.id)
                 FROM edges WHERE id > ?1 ORDER BY id LIMIT ?2",
            after,
            limit,
            edge_row,
            |e| e.id.clone(),
        )
    }

    fn list_unassigned_sensors(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UnassignedSensor>, RegistryError> {
        // A sensor registered after it was first seen is no longer unassigned.
        self.page(
            "SELECT u.sensor_id, u.edge_id, u.first_seen_ns, u.last_seen_ns, u.seen_count
                 FROM unassigned_sensors u
                 WHERE u.sensor_id > ?1
                   AND NOT EXISTS (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id
                                   AND s.component_id IS NOT NULL)
                 ORDER BY u.sensor_id LIMIT ?2",
            after,
            limit,
            |r| {
                Ok(UnassignedSensor {
                    sensor_id: r.get(0)?,
                    edge_id: r.get(1)?,
                    first_seen: super::format_ts(r.get(2)?),
                    last_seen: super::format_ts(r.get(3)?),
                    seen_count: r.get::<_, i64>(4)?.max(0) as u64,
                })
            },
            |u| u.sensor_id.clone(),
        )
    }

    fn stats(&self) -> Result<RegistryStats, RegistryError> {
        self.read(|c| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                c.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
            };
            let group = |sql: &str| -> rusqlite::Result<std::collections::BTreeMap<String, u64>> {
                let mut st = c.prepare(sql)?;
                let rows = st.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?;
                rows.collect()
            };
            Ok(RegistryStats {
                components: count("SELECT COUNT(*) FROM components")?,
                components_by_status: group(
                    "SELECT status, COUNT(*) FROM components GROUP BY status",
                )?,
                components_by_type: group("SELECT type, COUNT(*) FROM components GROUP BY type")?,
                sensors: count("SELECT COUNT(*) FROM sensors")?,
                sensors_unassigned: count(
                    "SELECT COUNT(*) FROM unassigned_sensors u WHERE NOT EXISTS
                     (SELECT 1 FROM sensors s WHERE s.id = u.sensor_id AND s.component_id IS NOT NULL)",
                )?,
                edges: count("SELECT COUNT(*) FROM edges")?,
                edges_online: count("SELECT COUNT(*) FROM edges WHERE online = 1")?,
                departments: count("SELECT COUNT(*) FROM departments")?,
                grid_cells: count("SELECT COUNT(*) FROM grid_cells")?,
            })
        })
    }

    fn sensor_contexts(&self) -> Result<Vec<SensorContext>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("{SENSOR_CONTEXT_SQL} ORDER BY s.id"))?;
            let rows = st.query_map([], sensor_context_row)?;
            rows.collect()
        })
    }

    fn sensor_context(&self, sensor_id: &str) -> Result<Option<SensorContext>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(&format!("{SENSOR_CONTEXT_SQL} AND s.id = ?1"))?
                .query_row([sensor_id], sensor_context_row)
                .optional()
        })
    }

    fn list_grid_cells(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<GridCell>, RegistryError> {
        self.page(
            "SELECT id, name, parent, lat_min, lon_min, lat_max, lon_max
                 FROM grid_cells WHERE id > ?1 ORDER BY id LIMIT ?2",
            after,
            limit,
            |r| {
                Ok(GridCell {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    parent: r.get(2)?,
                    lat_min: r.get(3)?,
                    lon_min: r.get(4)?,
                    lat_max: r.get(5)?,
                    lon_max: r.get(6)?,
                })
            },
            |g| g.id.clone(),
        )
    }

    fn list_departments(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Department>, RegistryError> {
        self.page(
            "SELECT id, name, duty, contact FROM departments
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            after,
            limit,
            |r| {
                Ok(Department {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    duty: r.get(2)?,
                    contact: r.get(3)?,
                })
            },
            |d| d.id.clone(),
        )
    }

    fn add_edge(
        &self,
        edge_id: &str,
        name: Option<&str>,
        site: Option<&str>,
    ) -> Result<String, RegistryError> {
        let edge_id = edge_id.trim();
        if edge_id.is_empty()
            || !edge_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(field(
                "id",
                format!("{edge_id:?}: use letters, digits, '-', '_' or '.' (it is the MQTT username and a topic level)"),
            ));
        }
        for (prefix, whose) in [
            (
                crate::broker::HUB_CLIENT_ID_PREFIX,
                "the hub's own MQTT client ids",
            ),
            (
                crate::broker::DEPARTMENT_USER_PREFIX,
                "department MQTT users",
            ),
        ] {
            if edge_id.starts_with(prefix) {
                return Err(field(
                    "id",
                    format!("{edge_id:?}: ids starting with {prefix:?} are {whose}"),
                ));
            }
        }
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        let key = protocol::uplink::mac_key(&secret);
        let broker_hash = crate::broker::mosquitto::password_hash(&secret);
        // A re-issued secret starts the edge's status freshness over: statuses sealed with the
        // old key no longer verify, and a re-provisioned box may restart its epochs at 1.
        self.write(|tx| {
            tx.execute(
                "INSERT INTO edges(id, name, site, password_hash, mac_key, revoked, broker_hash)
                 VALUES (?1, COALESCE(?2, ''), COALESCE(?3, ''), ?4, ?5, 0, ?6)
                 ON CONFLICT(id) DO UPDATE SET password_hash = excluded.password_hash,
                     mac_key = excluded.mac_key, revoked = 0, broker_hash = excluded.broker_hash,
                     status_counter = NULL, status_will_pending = NULL,
                     name = COALESCE(?2, name), site = COALESCE(?3, site)",
                params![edge_id, name, site, hash, key.as_slice(), broker_hash],
            )
            .map_err(db)
        })?;
        Ok(secret)
    }

    fn revoke_edge(&self, edge_id: &str) -> Result<(), RegistryError> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE edges SET revoked = 1, online = 0 WHERE id = ?1",
                [edge_id],
            )
            .map_err(db)
        })?;
        if n == 0 {
            return Err(RegistryError::NotFound(format!("edge {edge_id}")));
        }
        Ok(())
    }

    fn add_token(&self, department: Option<&str>, scope: Scope) -> Result<String, RegistryError> {
        if department.is_none() && scope != Scope::Admin {
            return Err(field(
                "department",
                "required for read and write tokens (only admin tokens may have none)",
            ));
        }
        let id = hex::encode(rand::random::<[u8; 6]>());
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        self.write(|tx| {
            if let Some(d) = department {
                if !exists(tx, "departments", "id", d).map_err(db)? {
                    return Err(field("department", format!("unknown department {d:?}")));
                }
            }
            tx.execute(
                "INSERT INTO api_tokens(id, secret_hash, department, scope, created_at_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, hash, department, scope.name(), now_ns()],
            )
            .map_err(db)
        })?;
        Ok(format!("{TOKEN_PREFIX}{id}.{secret}"))
    }

    fn verify_token(&self, token: &str) -> Result<Option<Principal>, RegistryError> {
        let Some((id, secret)) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|t| t.split_once('.'))
        else {
            return Ok(None);
        };
        let row: Option<(String, Option<String>, String, bool)> = self.read(|c| {
            c.prepare_cached(
                "SELECT secret_hash, department, scope, revoked FROM api_tokens WHERE id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
        })?;
        let Some((hash, department, scope, revoked)) = row else {
            return Ok(None);
        };
        if revoked || !secrets::verify(&hash, secret) {
            return Ok(None);
        }
        Ok(Scope::from_name(&scope).map(|scope| Principal {
            token_id: id.to_string(),
            department,
            scope,
        }))
    }

    fn add_mqtt_user(&self, department: &str) -> Result<(String, String), RegistryError> {
        self.add_mqtt_user_impl(department)
    }

    fn revoke_mqtt_user(&self, username: &str) -> Result<(), RegistryError> {
        self.revoke_mqtt_user_impl(username)
    }

    fn list_mqtt_users(&self) -> Result<Vec<MqttUser>, RegistryError> {
        self.list_mqtt_users_impl()
    }

    fn revoke_token(&self, token_id: &str) -> Result<(), RegistryError> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ?1",
                [token_id],
            )
            .map_err(db)
        })?;
        if n == 0 {
            return Err(RegistryError::NotFound(format!("token {token_id}")));
        }
        Ok(())
    }
}

/// Issued API tokens look like `wgt_<id>.<secret>`: the id finds the row, the secret is checked
/// against its salted hash.
pub const TOKEN_PREFIX: &str = "wgt_";
