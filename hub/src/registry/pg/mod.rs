//! The registry on PostgreSQL, shared by every hub of a cluster (`wangge_pg::Pg`, a pool usable
//! from any thread). Same behaviour as the SQLite registry, method for method: the same
//! validation (`registry::validation`), errors, keyset pagination and seed files.
//!
//! What sharing the database across hubs changes:
//! - A status is judged against the stored mark read `FOR UPDATE` in the transaction that
//!   writes the new mark, so of two hubs handed the same status exactly one accepts it.
//! - Idempotent writes (ingest audit, gaps) rest on unique keys with `ON CONFLICT DO NOTHING`,
//!   not on a read before the write.
//! - A unique violation (e.g. two hubs creating one component) is a `Conflict`; a lost
//!   connection a `Db` error naming the database (never its password).
//!
//! This file holds the pool, the statement shapes every entity shares and the trait impls, which
//! name the method of the same name in the entity's file, as `registry::sqlite` does.

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
use std::path::Path;
use std::sync::Arc;
use tokio_postgres::Error as SqlError;
use wangge_pg::{migrate, Client, Migration, Pg, PgError, Row, ToSql, Transaction};

mod components;
mod coverage;
mod edge_configs;
mod edges;
mod mqtt_users;
mod reference;
mod seed;
mod sensors;
mod tokens;

/// The registry's migrations on PostgreSQL (append only, like `hub/migrations/*.sql`).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/pg/0001_registry.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/pg/0002_sensor_registered_at.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/pg/0003_edge_config.sql"),
    },
];

/// The migration set's name in `wangge_migrations`.
const MIGRATION_SET: &str = "registry";

/// The registry in a PostgreSQL database. Cheap to share: every method takes `&self`.
pub struct PgRegistry {
    pg: Arc<Pg>,
}

/// Why a transaction's body stopped: the database failed, or the body refused the input
/// (the transaction is rolled back either way).
enum Failure<E = RegistryError> {
    Sql(SqlError),
    Refused(E),
}

impl<E> From<SqlError> for Failure<E> {
    fn from(e: SqlError) -> Self {
        Failure::Sql(e)
    }
}

impl From<RegistryError> for Failure<RegistryError> {
    fn from(e: RegistryError) -> Self {
        Failure::Refused(e)
    }
}

impl From<SeedError> for Failure<SeedError> {
    fn from(e: SeedError) -> Self {
        Failure::Refused(e)
    }
}

impl From<RegistryError> for Failure<SeedError> {
    fn from(e: RegistryError) -> Self {
        Failure::Refused(SeedError::Registry(e))
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

impl PgRegistry {
    /// The registry in `pg`'s database, its schema brought up to date (once across hubs).
    pub fn open(pg: Arc<Pg>) -> Result<PgRegistry, RegistryError> {
        let reg = PgRegistry { pg };
        migrate(&reg.pg, MIGRATION_SET, MIGRATIONS).map_err(|e| reg.db(e))?;
        Ok(reg)
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        self.read(async |c| {
            c.query_one(
                "SELECT COALESCE(MAX(version), 0) FROM wangge_migrations WHERE set_name = $1",
                &[&MIGRATION_SET],
            )
            .await?
            .try_get(0)
        })
    }

    /// `host:port/database` and the user (never the password).
    pub fn describe(&self) -> &str {
        self.pg.describe()
    }

    /// A failed call as a registry error: a unique violation is a conflict, a lost database a
    /// `Db` error saying so and naming it.
    fn db(&self, e: PgError) -> RegistryError {
        if e.is_unique_violation() {
            RegistryError::Conflict(format!("already exists: {e}"))
        } else if e.is_unavailable() {
            RegistryError::Db(format!(
                "registry database {} unavailable: {e}",
                self.pg.describe()
            ))
        } else {
            RegistryError::Db(e.to_string())
        }
    }

    /// Runs `f` on a connection of the pool (its statements each in their own transaction).
    fn read<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, SqlError>,
    ) -> Result<T, RegistryError> {
        self.pg.run(f).map_err(|e| self.db(e))
    }

    /// Runs `f` in one transaction: committed if it returns Ok, rolled back otherwise.
    fn write<T, E: From<RegistryError>>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, Failure<E>>,
    ) -> Result<T, E> {
        let out = self.pg.run(async |c| {
            let tx = c.transaction().await?;
            match f(&tx).await {
                Ok(v) => {
                    tx.commit().await?;
                    Ok(Ok(v))
                }
                Err(Failure::Refused(e)) => {
                    tx.rollback().await?;
                    Ok(Err(e))
                }
                Err(Failure::Sql(e)) => Err(e),
            }
        });
        match out {
            Ok(r) => r,
            Err(e) => Err(E::from(self.db(e))),
        }
    }

    /// The row `sql` (in the `?N` form of [`sql`]) selects for `keys`, if any.
    fn one<T: FromRow>(&self, sql: &str, keys: &[&str]) -> Result<Option<T>, RegistryError> {
        let sql = sql::pg(sql);
        let params: Vec<&(dyn ToSql + Sync)> = keys.iter().map(|k| k as _).collect();
        self.read(async |c| {
            c.query_opt(&sql, &params)
                .await?
                .as_ref()
                .map(T::from_row)
                .transpose()
        })
    }

    /// Every row `sql` (in the `?N` form of [`sql`]) selects for `keys`.
    fn all<T: FromRow>(&self, sql: &str, keys: &[&str]) -> Result<Vec<T>, RegistryError> {
        let params: Vec<&(dyn ToSql + Sync)> = keys.iter().map(|k| k as _).collect();
        self.rows(&sql::pg(sql), &params)
    }

    /// Every row `sql` selects with `params`.
    fn rows<T: FromRow>(&self, sql: &str, params: &Params<'_>) -> Result<Vec<T>, RegistryError> {
        self.read(async |c| {
            c.query(sql, params)
                .await?
                .iter()
                .map(T::from_row)
                .collect()
        })
    }

    /// Runs the one statement `sql`; returns the rows it changed.
    fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64, RegistryError> {
        self.read(async |c| c.execute(sql, params).await)
    }

    /// Runs `sql` (in the `?N` form of [`sql`]) on the row of `key` (`?1`);
    /// `NotFound("{what} {key}")` if there is none.
    fn update_existing(&self, sql: &str, what: &str, key: &str) -> Result<(), RegistryError> {
        match self.execute(&sql::pg(sql), &[&key])? {
            0 => Err(RegistryError::NotFound(format!("{what} {key}"))),
            _ => Ok(()),
        }
    }

    /// The rows a [`sql::Listing`]'s `sql` selects after the key `after`, at most `rows`.
    fn rows_after<T: FromRow>(
        &self,
        sql: &str,
        after: &str,
        rows: i64,
    ) -> Result<Vec<T>, RegistryError> {
        self.rows(&sql::pg(sql), &[&after, &rows])
    }

    fn department_exists(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.one::<()>(sql::DEPARTMENT_EXISTS, &[id])?.is_some())
    }
}

/// Refuses the first of `refs` that names no row, as the transaction sees them.
async fn check(tx: &Transaction<'_>, refs: &[Reference<'_>]) -> Result<(), Failure> {
    for r in refs {
        if !exists(tx, r.table, "id", r.value).await? {
            return Err(r.unknown().into());
        }
    }
    Ok(())
}

/// Whether `table` has a row whose `key` is `value`, as the transaction sees it.
async fn exists(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    value: &str,
) -> Result<bool, SqlError> {
    Ok(tx
        .query_opt(
            &format!("SELECT 1 FROM {table} WHERE {key} = $1"),
            &[&value],
        )
        .await?
        .is_some())
}

registry_traits_by_entity_files!(PgRegistry);
