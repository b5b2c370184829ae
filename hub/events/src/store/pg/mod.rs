//! The events store on PostgreSQL: the SQLite store's behaviour for a cluster of hubs sharing one
//! database (schema `migrations/pg/000N_*.sql`, migration set `events`).
//!
//! What two hubs writing at once need is kept by the database, not by a process-local mutex:
//! - one active event per (component, type): the partial unique index `events_one_active`; a raise
//!   that loses the race inserts nothing and becomes the repeat or no-op of the event that won;
//! - outbox cursors that commit in ascending order: drawn under an advisory transaction lock;
//! - one delivery per (subscription, change), claimed by one hub at a time (`FOR UPDATE SKIP
//!   LOCKED` and a lease).
//!
//! One concept per file, as the SQLite store: `events.rs`, `outbox.rs`, `subscriptions.rs`,
//! `audit.rs`, `attachments.rs`, `outages.rs`; `rows.rs` decodes rows.

/// Inside a transaction: the value of a store `Result`, or ends the transaction with its
/// refusal (rolled back by [`PgStore::write`]).
macro_rules! refuse_on_err {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => return Ok(Err(err)),
        }
    };
}

mod attachments;
mod audit;
mod events;
mod outages;
mod outbox;
mod rows;
mod subscriptions;

use super::{Result, StoreError};
use crate::lifecycle::Deadlines;
use std::sync::Arc;
use wangge_pg::{migrate, Migration, Pg, Transaction};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/pg/0001_events.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/pg/0002_attachments.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/pg/0003_edge_outages.sql"),
    },
];

/// The events store on PostgreSQL. Cheap to share: every operation checks a connection out of
/// the pool for one short transaction.
pub struct PgStore {
    pg: Arc<Pg>,
    deadlines: Deadlines,
}

impl PgStore {
    /// Opens the store on `pg`, applying its migrations once across the hubs that share the
    /// database.
    pub fn open(pg: Arc<Pg>, deadlines: Deadlines) -> Result<PgStore> {
        migrate(&pg, "events", MIGRATIONS)?;
        // A hub of a newer build may have migrated the shared database further: refuse to run
        // on a schema this build does not know, as the SQLite store does.
        let row = pg.query_opt(
            "SELECT MAX(version) FROM wangge_migrations WHERE set_name = 'events'",
            &[],
        )?;
        let found: Option<i64> = row.map(|r| r.try_get(0)).transpose()?.flatten();
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(found) = found.filter(|&v| v > known) {
            return Err(StoreError::TooNew { found, known });
        }
        Ok(PgStore { pg, deadlines })
    }

    /// Runs `f` in one transaction: committed when it returns `Ok(Ok(_))`, rolled back (the
    /// transaction dropped) on a refusal `Ok(Err(_))` or a database error.
    fn write<R>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> DbResult<Result<R>>) -> Result<R> {
        self.pg.run(async |c| {
            let tx = c.transaction().await?;
            let out = f(&tx).await?;
            if out.is_ok() {
                tx.commit().await?;
            }
            Ok(out)
        })?
    }
}

/// What a statement returns inside a transaction: the driver's error, mapped to
/// [`StoreError::Postgres`] when the transaction ends.
type DbResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// A unique or primary-key violation (SQLSTATE 23505).
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A PostgreSQL error for the person at the terminal: the server's own message and SQLSTATE
/// when it sent one (the driver's text alone is just "db error"). Neither the driver nor the
/// server puts the connection's password in these.
pub(super) fn describe_error(e: &wangge_pg::PgError) -> String {
    match e {
        wangge_pg::PgError::Db(db) => match db.as_db_error() {
            Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
            None => e.to_string(),
        },
        _ => e.to_string(),
    }
}

/// A page size for SQL: clamped to `1..=PAGE_MAX`, as the SQLite store does.
fn page(limit: usize) -> i64 {
    limit.clamp(1, super::PAGE_MAX) as i64
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(wangge_pg::PgError::Db(e))
    }
}
