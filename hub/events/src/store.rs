//! The events store: SQLite in WAL mode, in its own file (`<data_dir>/events.db`).
//!
//! Every change of an event (raise, repeat, clear, transition, overdue) is one transaction that
//! updates the event, appends to its history and appends the new Event JSON to `changes` (the
//! outbox every delivery channel reads). The partial unique index `events_one_active` makes
//! "one active event per (component, type)" a property of the store, not of the caller.

use crate::lifecycle::{self, Action, Deadlines};
use crate::model::{Change, Event, HistoryEntry, Severity, Status, Trigger};
use crate::rules::{Condition, ConditionKind};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_events.sql"),
    include_str!("../migrations/0002_pending_conditions.sql"),
];
/// How long a writer waits for another connection's transaction before giving up.
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// Longest page any list call returns.
pub const PAGE_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("events database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    #[error("events database schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A transition asked for by a person or the platform.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    pub action: Action,
    pub department: Option<String>,
    pub note: Option<String>,
}

/// Filters for listing events; newest first, paged by `before_id`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub event_type: Option<String>,
    pub component: Option<String>,
    /// The department the event is dispatched to.
    pub department: Option<String>,
    /// Events changed (raised, cleared, transitioned) at or after this time is not tracked;
    /// this filters on `raised_at`.
    pub since_ns: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub at_ns: i64,
    pub actor: String,
    pub department: Option<String>,
    pub action: String,
    pub event_id: Option<i64>,
    pub reason: String,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: i64,
    pub url: String,
    pub secret: String,
    /// Deliver only events this department may see (None = all, admin subscriptions).
    pub department: Option<String>,
    /// Event type patterns (`fire.*`); empty = all.
    pub event_types: Vec<String>,
    pub created_at_ns: i64,
    pub cursor: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub subscription_id: i64,
    pub cursor: i64,
    pub event_id: i64,
    pub version: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ns: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at_ns: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeliveryAttempt {
    pub delivery_uid: String,
    pub at_ns: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
}

/// The result of one webhook POST.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub delivery_uid: String,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub success: bool,
    /// When to try again; None = give up (status `failed`).
    pub retry_at_ns: Option<i64>,
}

/// The events store seam: SQLite now; a PostgreSQL implementation would follow the same contract
/// (one active event per (component, type) enforced by a unique index, outbox row per change).
pub trait EventStore: Send + Sync {
    /// Applies a rule's verdict. Returns the change, or None when it changes nothing
    /// (a stale backlog raise, a clear of something not raised).
    fn apply_condition(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>>;
    fn transition(
        &self,
        id: i64,
        actor: &str,
        req: &TransitionRequest,
        now_ns: i64,
    ) -> Result<Change>;
    /// Flags events past their deadline (not yet resolved/closed); one change per event.
    fn mark_overdue(&self, now_ns: i64) -> Result<Vec<Change>>;
    fn get(&self, id: i64) -> Result<Option<Event>>;
    fn history(&self, id: i64) -> Result<Vec<HistoryEntry>>;
    fn list(&self, q: &ListQuery) -> Result<Vec<Event>>;
    /// Events not closed on one component.
    fn active_for_component(&self, component_id: &str) -> Result<Vec<Event>>;
    /// Events the hub registered in `[from, to)` (for the evaluation report).
    fn created_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<Event>>;
    fn changes_after(&self, cursor: i64, limit: usize) -> Result<Vec<Change>>;
    /// (component, type, trigger time) of every event whose condition still holds (not cleared, not closed):
    /// what the rules re-attach to after a restart.
    fn raised_conditions(&self) -> Result<Vec<(String, String, i64)>>;
    /// Records (`Some(since)`) or forgets (`None`) when a duration condition of rule `rule_key`
    /// began holding on a component, so a restart resumes its count instead of starting over.
    fn set_pending(&self, component_id: &str, rule_key: &str, since_ns: Option<i64>) -> Result<()>;
    /// Every recorded pending duration condition: (component, rule key, since).
    fn pending_conditions(&self) -> Result<Vec<(String, String, i64)>>;
    fn last_cursor(&self) -> Result<i64>;
    fn audit(&self, entry: &AuditEntry) -> Result<()>;
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
    /// A new subscription receives changes committed after its creation.
    fn create_subscription(
        &self,
        url: &str,
        secret: &str,
        department: Option<&str>,
        event_types: &[String],
        now_ns: i64,
    ) -> Result<Subscription>;
    fn subscriptions(&self) -> Result<Vec<Subscription>>;
    fn subscription(&self, id: i64) -> Result<Option<Subscription>>;
    fn delete_subscription(&self, id: i64) -> Result<bool>;
    /// Creates deliveries for `changes` (cursor, event id, version) and moves the subscription's
    /// fan-out cursor to `up_to`, atomically.
    fn enqueue_deliveries(
        &self,
        subscription_id: i64,
        up_to: i64,
        changes: &[(i64, i64, i64)],
        now_ns: i64,
    ) -> Result<()>;
    /// Pending deliveries due now, with their body and subscription.
    fn due_deliveries(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, String, Subscription)>>;
    /// The earliest next attempt among pending deliveries.
    fn next_due_ns(&self) -> Result<Option<i64>>;
    fn record_attempt(&self, delivery_id: i64, outcome: &AttemptOutcome, now_ns: i64)
        -> Result<()>;
    fn deliveries(
        &self,
        subscription_id: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, Vec<DeliveryAttempt>)>>;
    fn get_cursor(&self, name: &str) -> Result<i64>;
    fn set_cursor(&self, name: &str, cursor: i64) -> Result<()>;
}

/// The SQLite store. One connection behind a mutex: every operation is a short transaction.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    deadlines: Deadlines,
}

const EVENT_COLS: &str = "id, version, component_id, type, severity, status, raised_at_ns, cleared_at_ns, \
     count, department, deadline_ns, overdue, late, trigger_quantity, trigger_value, trigger_threshold, \
     trigger_ts_ns, created_at_ns, acknowledged_at_ns, closed_at_ns";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<std::result::Result<Event, String>> {
    let severity: String = row.get(4)?;
    let status: String = row.get(5)?;
    let value: String = row.get(14)?;
    let Some(severity) = Severity::from_name(&severity) else {
        return Ok(Err(format!("severity {severity:?}")));
    };
    let Some(status) = Status::from_name(&status) else {
        return Ok(Err(format!("status {status:?}")));
    };
    let value = match serde_json::from_str(&value) {
        Ok(v) => v,
        Err(_) => return Ok(Err(format!("trigger value {value:?}"))),
    };
    Ok(Ok(Event {
        id: row.get(0)?,
        version: row.get(1)?,
        component_id: row.get(2)?,
        event_type: row.get(3)?,
        severity,
        status,
        raised_at_ns: row.get(6)?,
        cleared_at_ns: row.get(7)?,
        count: row.get(8)?,
        department: row.get(9)?,
        deadline_ns: row.get(10)?,
        overdue: row.get::<_, i64>(11)? != 0,
        late: row.get::<_, i64>(12)? != 0,
        trigger: Trigger {
            quantity: row.get(13)?,
            value,
            threshold: row.get(15)?,
            ts_ns: row.get(16)?,
        },
        created_at_ns: row.get(17)?,
        acknowledged_at_ns: row.get(18)?,
        closed_at_ns: row.get(19)?,
    }))
}

fn query_events(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, event_from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.map_err(StoreError::Corrupt)?);
    }
    Ok(out)
}

fn active_event(conn: &Connection, component_id: &str, event_type: &str) -> Result<Option<Event>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE component_id = ?1 AND type = ?2 AND status <> 'closed'"
    );
    Ok(query_events(conn, &sql, &[&component_id, &event_type])?.pop())
}

fn load_event(conn: &Connection, id: i64) -> Result<Option<Event>> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1");
    Ok(query_events(conn, &sql, &[&id])?.pop())
}

/// Writes the event's current fields (the caller bumped `version`).
fn save_event(conn: &Connection, e: &Event) -> Result<()> {
    conn.prepare_cached(
        "UPDATE events SET version = ?2, status = ?3, cleared_at_ns = ?4, count = ?5, department = ?6, \
         deadline_ns = ?7, overdue = ?8, acknowledged_at_ns = ?9, closed_at_ns = ?10 WHERE id = ?1",
    )?
    .execute(params![
        e.id,
        e.version,
        e.status.name(),
        e.cleared_at_ns,
        e.count,
        e.department,
        e.deadline_ns,
        e.overdue as i64,
        e.acknowledged_at_ns,
        e.closed_at_ns
    ])?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_history(
    conn: &Connection,
    event_id: i64,
    at_ns: i64,
    actor: &str,
    action: &str,
    from: Option<Status>,
    to: Status,
    department: Option<&str>,
    note: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, to_status, department, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event_id,
        at_ns,
        actor,
        action,
        from.map(Status::name),
        to.name(),
        department,
        note
    ])?;
    Ok(())
}

/// Appends the event's new JSON to the outbox; returns the change with its cursor.
fn record_change(conn: &Connection, e: &Event, now_ns: i64) -> Result<Change> {
    let body = e.to_json().to_string();
    conn.prepare_cached(
        "INSERT INTO changes (event_id, version, at_ns, body) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![e.id, e.version, now_ns, body])?;
    Ok(Change {
        cursor: conn.last_insert_rowid(),
        event: e.clone(),
        body,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn subscription_from_row(row: &Row<'_>) -> rusqlite::Result<Subscription> {
    let types: String = row.get(4)?;
    Ok(Subscription {
        id: row.get(0)?,
        url: row.get(1)?,
        secret: row.get(2)?,
        department: row.get(3)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        created_at_ns: row.get(5)?,
        cursor: row.get(6)?,
    })
}

const SUB_COLS: &str = "id, url, secret, department, event_types, created_at_ns, cursor";
const DELIVERY_COLS: &str =
    "d.id, d.subscription_id, d.cursor, d.event_id, d.version, d.status, d.attempts, \
     d.next_attempt_ns, d.last_status, d.last_error, d.delivered_at_ns";

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get(0)?,
        subscription_id: row.get(1)?,
        cursor: row.get(2)?,
        event_id: row.get(3)?,
        version: row.get(4)?,
        status: row.get(5)?,
        attempts: row.get(6)?,
        next_attempt_ns: row.get(7)?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
        delivered_at_ns: row.get(10)?,
    })
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

    fn raise(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let change = match active_event(&tx, &c.component_id, &c.event_type)? {
            Some(mut e) => {
                // A repeat is a new occurrence after the condition cleared. A raise while it still
                // holds is a duplicate (a replay, or an evaluator that restarted) and changes nothing.
                let stale = match e.cleared_at_ns {
                    Some(cleared) => c.trigger.ts_ns <= cleared,
                    None => true,
                };
                if stale {
                    return Ok(None);
                }
                e.count += 1;
                e.version += 1;
                e.cleared_at_ns = None;
                save_event(&tx, &e)?;
                add_history(
                    &tx,
                    e.id,
                    now_ns,
                    "system",
                    "repeat",
                    Some(e.status),
                    e.status,
                    None,
                    None,
                )?;
                record_change(&tx, &e, now_ns)?
            }
            None => {
                // A backlog must not re-raise what a closed case already saw clear.
                let last_end: Option<i64> = tx
                    .prepare_cached(
                        "SELECT MAX(COALESCE(cleared_at_ns, trigger_ts_ns)) FROM events \
                         WHERE component_id = ?1 AND type = ?2",
                    )?
                    .query_row(params![c.component_id, c.event_type], |r| r.get(0))?;
                if last_end.is_some_and(|end| c.trigger.ts_ns <= end) {
                    return Ok(None);
                }
                let deadline_ns = now_ns.saturating_add(self.deadlines.for_severity(c.severity));
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO events (version, component_id, type, severity, status, raised_at_ns, \
                         count, deadline_ns, late, trigger_quantity, trigger_value, trigger_threshold, \
                         trigger_ts_ns, created_at_ns) \
                         VALUES (1, ?1, ?2, ?3, 'open', ?4, 1, ?5, ?6, ?7, ?8, ?9, ?4, ?10)",
                    )?
                    .execute(params![
                        c.component_id,
                        c.event_type,
                        c.severity.name(),
                        c.trigger.ts_ns,
                        deadline_ns,
                        c.late as i64,
                        c.trigger.quantity,
                        c.trigger.value.to_string(),
                        c.trigger.threshold,
                        now_ns
                    ]);
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::Conflict(format!(
                            "an active {} event on {} exists",
                            c.event_type, c.component_id
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
                let id = tx.last_insert_rowid();
                let e = load_event(&tx, id)?.ok_or(StoreError::NotFound(id))?;
                add_history(
                    &tx,
                    id,
                    now_ns,
                    "system",
                    "raise",
                    None,
                    Status::Open,
                    None,
                    None,
                )?;
                record_change(&tx, &e, now_ns)?
            }
        };
        tx.commit()?;
        Ok(Some(change))
    }

    fn clear(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(mut e) = active_event(&tx, &c.component_id, &c.event_type)? else {
            return Ok(None);
        };
        if e.cleared_at_ns.is_some() || c.trigger.ts_ns < e.trigger.ts_ns {
            return Ok(None);
        }
        e.cleared_at_ns = Some(c.trigger.ts_ns);
        e.version += 1;
        save_event(&tx, &e)?;
        add_history(
            &tx,
            e.id,
            now_ns,
            "system",
            "clear",
            Some(e.status),
            e.status,
            None,
            None,
        )?;
        let change = record_change(&tx, &e, now_ns)?;
        tx.commit()?;
        Ok(Some(change))
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

impl EventStore for SqliteStore {
    fn apply_condition(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        match c.kind {
            ConditionKind::Raised => {
                // A concurrent raise on another connection may win the unique index between our
                // read and insert: then ours becomes a repeat.
                match self.raise(c, now_ns) {
                    Err(StoreError::Conflict(_)) => self.raise(c, now_ns),
                    other => other,
                }
            }
            ConditionKind::Cleared => self.clear(c, now_ns),
        }
    }

    fn transition(
        &self,
        id: i64,
        actor: &str,
        req: &TransitionRequest,
        now_ns: i64,
    ) -> Result<Change> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut e = load_event(&tx, id)?.ok_or(StoreError::NotFound(id))?;
        let from = e.status;
        let to =
            lifecycle::next(from, req.action).ok_or_else(|| StoreError::InvalidTransition {
                status: from.name(),
                action: req.action.name().to_string(),
                allowed: lifecycle::allowed(from),
            })?;
        match req.action {
            Action::Dispatch => {
                let d = req
                    .department
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .ok_or(StoreError::MissingDepartment)?;
                e.department = Some(d.to_string());
            }
            Action::Acknowledge => {
                e.acknowledged_at_ns.get_or_insert(now_ns);
            }
            Action::Close => e.closed_at_ns = Some(now_ns),
            Action::Reopen => {
                e.closed_at_ns = None;
                e.overdue = false;
                e.deadline_ns = now_ns.saturating_add(self.deadlines.for_severity(e.severity));
            }
            Action::Start | Action::Resolve => {}
        }
        e.status = to;
        e.version += 1;
        if let Err(err) = save_event(&tx, &e) {
            if let StoreError::Sqlite(s) = &err {
                if is_unique_violation(s) {
                    return Err(StoreError::Conflict(format!(
                        "cannot reopen: another active {} event on {} exists",
                        e.event_type, e.component_id
                    )));
                }
            }
            return Err(err);
        }
        add_history(
            &tx,
            e.id,
            now_ns,
            actor,
            req.action.name(),
            Some(from),
            to,
            e.department
                .as_deref()
                .filter(|_| req.action == Action::Dispatch),
            req.note.as_deref(),
        )?;
        let change = record_change(&tx, &e, now_ns)?;
        tx.commit()?;
        Ok(change)
    }

    fn mark_overdue(&self, now_ns: i64) -> Result<Vec<Change>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE overdue = 0 AND status NOT IN ('resolved', 'closed') \
             AND deadline_ns < ?1 LIMIT 1000"
        );
        let due = query_events(&tx, &sql, &[&now_ns])?;
        let mut out = Vec::with_capacity(due.len());
        for mut e in due {
            e.overdue = true;
            e.version += 1;
            save_event(&tx, &e)?;
            add_history(
                &tx,
                e.id,
                now_ns,
                "system",
                "overdue",
                Some(e.status),
                e.status,
                None,
                None,
            )?;
            out.push(record_change(&tx, &e, now_ns)?);
        }
        tx.commit()?;
        Ok(out)
    }

    fn get(&self, id: i64) -> Result<Option<Event>> {
        load_event(&self.conn(), id)
    }

    fn history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ns, actor, action, from_status, to_status, department, note FROM event_history \
             WHERE event_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(HistoryEntry {
                at: crate::model::rfc3339(r.get(0)?),
                actor: r.get(1)?,
                action: r.get(2)?,
                from_status: r.get(3)?,
                to_status: r.get(4)?,
                department: r.get(5)?,
                note: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Event>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR type = ?2) \
             AND (?3 IS NULL OR component_id = ?3) AND (?4 IS NULL OR department = ?4) \
             AND (?5 IS NULL OR raised_at_ns >= ?5) AND (?6 IS NULL OR id < ?6) ORDER BY id DESC LIMIT ?7"
        );
        let limit = q.limit.clamp(1, PAGE_MAX) as i64;
        query_events(
            &conn,
            &sql,
            &[
                &q.status.map(Status::name),
                &q.event_type,
                &q.component,
                &q.department,
                &q.since_ns,
                &q.before_id,
                &limit,
            ],
        )
    }

    fn active_for_component(&self, component_id: &str) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE component_id = ?1 AND status <> 'closed'"
        );
        query_events(&self.conn(), &sql, &[&component_id])
    }

    fn created_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE created_at_ns >= ?1 AND created_at_ns < ?2 ORDER BY id"
        );
        query_events(&self.conn(), &sql, &[&from_ns, &to_ns])
    }

    fn changes_after(&self, cursor: i64, limit: usize) -> Result<Vec<Change>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT cursor, body FROM changes WHERE cursor > ?1 ORDER BY cursor LIMIT ?2",
        )?;
        let limit = limit.clamp(1, PAGE_MAX) as i64;
        let rows = stmt.query_map(params![cursor, limit], |r| {
            let cursor: i64 = r.get(0)?;
            let body: String = r.get(1)?;
            Ok((cursor, body))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (cursor, body) = row?;
            // The event as it was at that change, from the outbox body (what consumers receive).
            let event = event_from_body(&body).map_err(StoreError::Corrupt)?;
            out.push(Change {
                cursor,
                event,
                body,
            });
        }
        Ok(out)
    }

    fn raised_conditions(&self) -> Result<Vec<(String, String, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT component_id, type, trigger_ts_ns FROM events WHERE status <> 'closed' AND cleared_at_ns IS NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_pending(&self, component_id: &str, rule_key: &str, since_ns: Option<i64>) -> Result<()> {
        let conn = self.conn();
        match since_ns {
            Some(since) => conn
                .prepare_cached(
                    "INSERT INTO pending_conditions (component_id, rule_key, since_ns) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(component_id, rule_key) DO UPDATE SET since_ns = excluded.since_ns",
                )?
                .execute(params![component_id, rule_key, since])?,
            None => conn
                .prepare_cached(
                    "DELETE FROM pending_conditions WHERE component_id = ?1 AND rule_key = ?2",
                )?
                .execute(params![component_id, rule_key])?,
        };
        Ok(())
    }

    fn pending_conditions(&self) -> Result<Vec<(String, String, i64)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT component_id, rule_key, since_ns FROM pending_conditions")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_cursor(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(cursor), 0) FROM changes", [], |r| {
                r.get(0)
            })?)
    }

    fn audit(&self, a: &AuditEntry) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (at_ns, actor, department, action, event_id, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.at_ns, a.actor, a.department, a.action, a.event_id, a.reason],
        )?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ns, actor, department, action, event_id, reason FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit.clamp(1, PAGE_MAX) as i64], |r| {
            Ok(AuditEntry {
                at_ns: r.get(0)?,
                actor: r.get(1)?,
                department: r.get(2)?,
                action: r.get(3)?,
                event_id: r.get(4)?,
                reason: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn create_subscription(
        &self,
        url: &str,
        secret: &str,
        department: Option<&str>,
        event_types: &[String],
        now_ns: i64,
    ) -> Result<Subscription> {
        let conn = self.conn();
        let types = serde_json::to_string(event_types).unwrap_or_else(|_| "[]".into());
        conn.execute(
            "INSERT INTO subscriptions (url, secret, department, event_types, created_at_ns, cursor) \
             VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(cursor), 0) FROM changes))",
            params![url, secret, department, types, now_ns],
        )?;
        let id = conn.last_insert_rowid();
        Ok(conn.query_row(
            &format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = ?1"),
            [id],
            subscription_from_row,
        )?)
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {SUB_COLS} FROM subscriptions ORDER BY id"))?;
        let rows = stmt.query_map([], subscription_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = ?1"),
                [id],
                subscription_from_row,
            )
            .optional()?)
    }

    fn delete_subscription(&self, id: i64) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM subscriptions WHERE id = ?1", [id])?;
        tx.execute(
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE subscription_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM deliveries WHERE subscription_id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn enqueue_deliveries(
        &self,
        subscription_id: i64,
        up_to: i64,
        changes: &[(i64, i64, i64)],
        now_ns: i64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (cursor, event_id, version) in changes {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (subscription_id, cursor, event_id, version, status, next_attempt_ns) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?
            .execute(params![subscription_id, cursor, event_id, version, now_ns])?;
        }
        tx.execute(
            "UPDATE subscriptions SET cursor = MAX(cursor, ?2) WHERE id = ?1",
            params![subscription_id, up_to],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn due_deliveries(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, String, Subscription)>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {DELIVERY_COLS}, c.body, s.id, s.url, s.secret, s.department, s.event_types, s.created_at_ns, s.cursor \
             FROM deliveries d JOIN changes c ON c.cursor = d.cursor JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE d.status = 'pending' AND d.next_attempt_ns <= ?1 ORDER BY d.next_attempt_ns, d.id LIMIT ?2"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![now_ns, limit.clamp(1, PAGE_MAX) as i64], |r| {
            let d = delivery_from_row(r)?;
            let body: String = r.get(11)?;
            let types: String = r.get(16)?;
            let s = Subscription {
                id: r.get(12)?,
                url: r.get(13)?,
                secret: r.get(14)?,
                department: r.get(15)?,
                event_types: serde_json::from_str(&types).unwrap_or_default(),
                created_at_ns: r.get(17)?,
                cursor: r.get(18)?,
            };
            Ok((d, body, s))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn next_due_ns(&self) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MIN(next_attempt_ns) FROM deliveries WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    fn record_attempt(&self, delivery_id: i64, o: &AttemptOutcome, now_ns: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO delivery_attempts (delivery_id, delivery_uid, at_ns, http_status, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![delivery_id, o.delivery_uid, now_ns, o.http_status, o.error],
        )?;
        let (status, next, delivered) = if o.success {
            ("delivered", now_ns, Some(now_ns))
        } else {
            match o.retry_at_ns {
                Some(t) => ("pending", t, None),
                None => ("failed", now_ns, None),
            }
        };
        tx.execute(
            "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_ns = ?3, last_status = ?4, \
             last_error = ?5, delivered_at_ns = ?6 WHERE id = ?1",
            params![delivery_id, status, next, o.http_status, o.error, delivered],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn deliveries(
        &self,
        subscription_id: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d WHERE d.subscription_id = ?1 ORDER BY d.id DESC LIMIT ?2"
        ))?;
        let ds: Vec<Delivery> = stmt
            .query_map(
                params![subscription_id, limit.clamp(1, PAGE_MAX) as i64],
                delivery_from_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        let mut attempts_stmt = conn.prepare_cached(
            "SELECT delivery_uid, at_ns, http_status, error FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id",
        )?;
        let mut out = Vec::with_capacity(ds.len());
        for d in ds {
            let attempts = attempts_stmt
                .query_map([d.id], |r| {
                    Ok(DeliveryAttempt {
                        delivery_uid: r.get(0)?,
                        at_ns: r.get(1)?,
                        http_status: r.get(2)?,
                        error: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            out.push((d, attempts));
        }
        Ok(out)
    }

    fn get_cursor(&self, name: &str) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT cursor FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0))
    }

    fn set_cursor(&self, name: &str, cursor: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO cursors (name, cursor) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor",
            params![name, cursor],
        )?;
        Ok(())
    }
}

/// Rebuilds an [`Event`] from its outbox JSON (the state at that change).
pub fn event_from_body(body: &str) -> std::result::Result<Event, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("change body: {e}"))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let ts = |x: Option<&serde_json::Value>| -> Option<i64> {
        x.and_then(|x| x.as_str())
            .and_then(|t| crate::model::parse_ts_ns(t).ok())
    };
    let bad = |k: &str| format!("change body: field {k}");
    let trigger = v.get("trigger").ok_or_else(|| bad("trigger"))?;
    Ok(Event {
        id: v
            .get("id")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| bad("id"))?,
        version: v
            .get("version")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| bad("version"))?,
        component_id: s("component_id").ok_or_else(|| bad("component_id"))?,
        event_type: s("type").ok_or_else(|| bad("type"))?,
        severity: s("severity")
            .and_then(|x| Severity::from_name(&x))
            .ok_or_else(|| bad("severity"))?,
        status: s("status")
            .and_then(|x| Status::from_name(&x))
            .ok_or_else(|| bad("status"))?,
        raised_at_ns: ts(v.get("raised_at")).ok_or_else(|| bad("raised_at"))?,
        cleared_at_ns: ts(v.get("cleared_at")),
        count: v.get("count").and_then(|x| x.as_i64()).unwrap_or(1),
        department: s("department"),
        deadline_ns: ts(v.get("deadline")).ok_or_else(|| bad("deadline"))?,
        overdue: v.get("overdue").and_then(|x| x.as_bool()).unwrap_or(false),
        late: v.get("late").and_then(|x| x.as_bool()).unwrap_or(false),
        trigger: Trigger {
            quantity: trigger
                .get("quantity")
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string(),
            value: trigger.get("value").cloned().unwrap_or_default(),
            threshold: trigger.get("threshold").and_then(|x| x.as_f64()),
            ts_ns: ts(trigger.get("ts")).unwrap_or(0),
        },
        created_at_ns: 0,
        acknowledged_at_ns: None,
        closed_at_ns: None,
    })
}
