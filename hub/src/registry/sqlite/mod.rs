//! The registry on SQLite in WAL mode: one writer connection, a few reader connections.
//!
//! WAL lets readers (API lists, the ingest path's lookups) run while an import or an edge
//! status update writes. Every method is synchronous; async callers use `spawn_blocking`.
//!
//! This file holds the connections, the statement shapes every entity shares (`one` row,
//! `all` rows, a `Listing`'s pages, `execute` one write) and the trait impls, which
//! only name the method of the same name that answers; each entity's SQL is in its own file
//! (`components`, `sensors`, `edges`, `tokens`, `mqtt_users`, `reference` for grid cells,
//! departments and statistics). The module is private to `registry`.

use super::model::*;
use super::rows::{self, FromRow};
use super::seed::{SeedError, SeedSummary};
use super::sql;
use super::validation::{self, non_empty, Reference};
use super::{
    now_ns, BrokerAccount, EdgeCredentials, Freshness, GapReport, IngestRefusal, MqttUser,
    MqttUserCredentials, RegistryAdmin, RegistryError, RegistryStore, SensorAssignment,
};
use super::{ConfigDelivery, EdgeConfigState, NewConfig, StoredConfig};
use protocol::edge_config::ConfigReport;
use protocol::uplink::EdgeStatus;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
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
mod coverage;
mod edge_configs;
mod edges;
mod mqtt_users;
mod reference;
mod seed;
mod sensors;
mod tokens;

pub use components::upsert_component;

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

    /// The rows a [`sql::Listing`]'s `sql` selects after the key `after`, at most `rows`.
    fn rows_after<T: FromRow>(
        &self,
        sql: &str,
        after: &str,
        rows: i64,
    ) -> Result<Vec<T>, RegistryError> {
        self.rows(sql, params![after, rows])
    }

    /// The row `sql` selects for `keys` (`?1`, …), if any.
    fn one<T: FromRow>(&self, sql: &str, keys: &[&str]) -> Result<Option<T>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(sql)?
                .query_row(rusqlite::params_from_iter(keys), |r| T::from_row(r))
                .optional()
        })
    }

    /// Every row `sql` selects for `keys` (`?1`, …).
    fn all<T: FromRow>(&self, sql: &str, keys: &[&str]) -> Result<Vec<T>, RegistryError> {
        self.rows(sql, rusqlite::params_from_iter(keys))
    }

    /// Every row `sql` selects with `params`.
    fn rows<T: FromRow>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(params, |r| T::from_row(r))?;
            rows.collect()
        })
    }

    /// Runs the one statement `sql` in its own write transaction; returns the rows it changed.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, RegistryError> {
        self.write(|tx| tx.execute(sql, params).map_err(db))
    }

    /// Runs `sql` on the row of `key` (`?1`); `NotFound("{what} {key}")` if there is none.
    fn update_existing(&self, sql: &str, what: &str, key: &str) -> Result<(), RegistryError> {
        match self.execute(sql, [key])? {
            0 => Err(RegistryError::NotFound(format!("{what} {key}"))),
            _ => Ok(()),
        }
    }

    fn department_exists(&self, id: &str) -> Result<bool, RegistryError> {
        self.read(|c| {
            c.prepare_cached(sql::DEPARTMENT_EXISTS)?
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

/// A poisoned lock only means another thread panicked mid-statement; SQLite rolled that back.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Refuses the first of `refs` that names no row, as `tx` sees them.
fn check(tx: &Connection, refs: &[Reference<'_>]) -> Result<(), RegistryError> {
    for r in refs {
        if !exists(tx, r.table, "id", r.value).map_err(db)? {
            return Err(r.unknown());
        }
    }
    Ok(())
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

registry_traits_by_entity_files!(SqliteRegistry);
