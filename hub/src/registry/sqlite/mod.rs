//! The registry on SQLite in WAL mode: one writer connection, a few reader connections.
//!
//! WAL lets readers (API lists, the ingest path's lookups) run while an import or an edge
//! status update writes. Every method is synchronous; async callers use `spawn_blocking`.
//!
//! This file holds the connections and the trait impls; each entity's SQL is in its own file
//! (`components`, `sensors`, `edges`, `tokens`, `mqtt_users`, `reference` for grid cells,
//! departments and statistics). The module is private to `registry`.

use wangge_events::from_columns;

use super::codes::ComponentCode;
use super::model::*;
use super::{
    now_ns, secrets, BrokerAccount, EdgeCredentials, Freshness, IngestRefusal, MqttUser,
    MqttUserCredentials, RegistryAdmin, RegistryError, RegistryStore, SensorAssignment, StatusMark,
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

mod components;
mod edges;
mod mqtt_users;
mod reference;
mod sensors;
mod tokens;

pub use components::{upsert_component, validate_component};

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

impl RegistryStore for SqliteRegistry {
    fn sensor_assignment(
        &self,
        sensor_id: &str,
    ) -> Result<Option<SensorAssignment>, RegistryError> {
        self.sensor_assignment_impl(sensor_id)
    }

    fn edge_credentials(&self, edge_id: &str) -> Result<Option<EdgeCredentials>, RegistryError> {
        self.edge_credentials_impl(edge_id)
    }

    fn record_edge_status(&self, s: &EdgeStatus) -> Result<Freshness, RegistryError> {
        self.record_edge_status_impl(s)
    }

    fn audit_ingest(&self, refusal: &IngestRefusal<'_>) -> Result<bool, RegistryError> {
        self.audit_ingest_impl(refusal)
    }

    fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError> {
        self.record_edge_seen_impl(edge_id, at_ns)
    }

    fn record_gaps(
        &self,
        edge_id: &str,
        epoch: u64,
        seq: u64,
        gaps: &[protocol::uplink::Gap],
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.record_gaps_impl(edge_id, epoch, seq, gaps, at_ns)
    }

    fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError> {
        self.note_unassigned_sensor_impl(sensor_id, edge_id, at_ns)
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
        self.list_components_impl(f)
    }

    fn component(&self, id: &str) -> Result<Option<Component>, RegistryError> {
        self.component_impl(id)
    }

    fn create_component(&self, input: &ComponentInput) -> Result<Component, RegistryError> {
        self.create_component_impl(input)
    }

    fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError> {
        self.preview_component_impl(id, input)
    }

    fn put_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<(Component, bool), RegistryError> {
        self.put_component_impl(id, input)
    }

    fn set_component_status(
        &self,
        id: &str,
        status: ComponentStatus,
    ) -> Result<bool, RegistryError> {
        self.set_component_status_impl(id, status)
    }

    fn delete_component(&self, id: &str) -> Result<bool, RegistryError> {
        self.delete_component_impl(id)
    }

    fn sensor(&self, id: &str) -> Result<Option<Sensor>, RegistryError> {
        self.sensor_impl(id)
    }

    fn put_sensor(&self, id: &str, input: &SensorInput) -> Result<(Sensor, bool), RegistryError> {
        self.put_sensor_impl(id, input)
    }

    fn component_sensors(&self, component_id: &str) -> Result<Vec<Sensor>, RegistryError> {
        self.component_sensors_impl(component_id)
    }

    fn list_edges(&self, after: Option<&str>, limit: usize) -> Result<Page<Edge>, RegistryError> {
        self.list_edges_impl(after, limit)
    }

    fn list_unassigned_sensors(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UnassignedSensor>, RegistryError> {
        self.list_unassigned_sensors_impl(after, limit)
    }

    fn stats(&self) -> Result<RegistryStats, RegistryError> {
        self.stats_impl()
    }

    fn sensor_contexts(&self) -> Result<Vec<SensorContext>, RegistryError> {
        self.sensor_contexts_impl()
    }

    fn sensor_context(&self, sensor_id: &str) -> Result<Option<SensorContext>, RegistryError> {
        self.sensor_context_impl(sensor_id)
    }

    fn list_grid_cells(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<GridCell>, RegistryError> {
        self.list_grid_cells_impl(after, limit)
    }

    fn list_departments(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Department>, RegistryError> {
        self.list_departments_impl(after, limit)
    }

    fn add_edge(
        &self,
        edge_id: &str,
        name: Option<&str>,
        site: Option<&str>,
    ) -> Result<String, RegistryError> {
        self.add_edge_impl(edge_id, name, site)
    }

    fn revoke_edge(&self, edge_id: &str) -> Result<(), RegistryError> {
        self.revoke_edge_impl(edge_id)
    }

    fn add_token(&self, department: Option<&str>, scope: Scope) -> Result<String, RegistryError> {
        self.add_token_impl(department, scope)
    }

    fn verify_token(&self, token: &str) -> Result<Option<Principal>, RegistryError> {
        self.verify_token_impl(token)
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
        self.revoke_token_impl(token_id)
    }
}
