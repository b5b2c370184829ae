//! The events store: SQLite in WAL mode, in its own file (`<data_dir>/events.db`).
//!
//! Every change of an event (raise, repeat, clear, transition, overdue) is one transaction that
//! updates the event, appends to its history and appends the new Event JSON to `changes` (the
//! outbox every delivery channel reads). The partial unique index `events_one_active` makes
//! "one active event per (component, type)" a property of the store, not of the caller.
//!
//! One concept per file: `events.rs` (events, their history, pending conditions), `outbox.rs`
//! (the `changes` log and named cursors), `subscriptions.rs` (webhook subscriptions and their
//! deliveries), `audit.rs` (refusals and administrative actions), `attachments.rs` (photos'
//! metadata; their bytes are the blob store's), `outages.rs` (announced edge outages, which the
//! evaluation report excludes). [`EventStore`] is all six.

mod attachments;
mod audit;
mod events;
mod outages;
mod outbox;
mod pg;
mod subscriptions;

pub use attachments::{Attachment, Attachments, Deletion, NewAttachment};
pub use audit::{AuditEntry, AuditLog};
pub use events::{EventLog, ListQuery, Transition, TransitionRequest};
pub use outages::{EdgeOutage, NewOutage, Outages};
pub use outbox::{event_from_body, Outbox};
pub use pg::PgStore;
pub use subscriptions::{
    AttemptOutcome, Delivery, DeliveryAttempt, FanOutPage, Subscription, SubscriptionSpec,
    Subscriptions,
};

use crate::lifecycle::Deadlines;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_events.sql"),
    include_str!("../../migrations/0002_pending_conditions.sql"),
    include_str!("../../migrations/0003_attachments.sql"),
    include_str!("../../migrations/0004_edge_outages.sql"),
];
/// How long a writer waits for another connection's transaction before giving up.
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// Longest page any list call returns.
pub const PAGE_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("events database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL back end's errors; their text names host, port and database, never the
    /// password.
    #[error("events database (PostgreSQL): {}", pg::describe_error(.0))]
    Postgres(#[from] wangge_pg::PgError),
    #[error("event {0} not found")]
    NotFound(i64),
    #[error("action {action:?} is not allowed on an event that is {status}; allowed: {allowed:?}")]
    InvalidTransition {
        status: &'static str,
        action: String,
        allowed: Vec<&'static str>,
    },
    #[error("dispatch needs a department")]
    MissingDepartment,
    #[error("{0}")]
    Conflict(String),
    #[error("events database holds an invalid value: {0}")]
    Corrupt(String),
    #[error("events configuration: {0}")]
    Config(String),
    #[error("attachment {0} not found")]
    AttachmentNotFound(i64),
    /// A transition names an attachment it cannot reference (message says why).
    #[error("{0}")]
    Attachment(String),
    /// A transition a `[[events.attachments.require]]` rule stops without a photo.
    #[error(
        "rule {rule:?} requires at least one attachment (a photo) to {action} a {event_type} event; \
         upload it (POST events/{{id}}/attachments) and name it in `attachments`"
    )]
    EvidenceRequired {
        rule: String,
        action: &'static str,
        event_type: String,
    },
    /// A bound was reached (message names it and the setting).
    #[error("{0}")]
    Limit(String),
    #[error("events database schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The events store seam: SQLite now; a PostgreSQL implementation would follow the same contract
/// (one active event per (component, type) enforced by a unique index, outbox row per change).
/// It is the six per-concept traits together; every type that has all six is one.
pub trait EventStore:
    EventLog + Outbox + Subscriptions + AuditLog + Attachments + Outages + Send + Sync
{
}

impl<T: EventLog + Outbox + Subscriptions + AuditLog + Attachments + Outages + Send + Sync>
    EventStore for T
{
}

/// The SQLite store. One connection behind a mutex: every operation is a short transaction.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    deadlines: Deadlines,
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path, deadlines: Deadlines) -> Result<SqliteStore> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            deadlines,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
