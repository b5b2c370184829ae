//! Rows to domain values: the column lists the queries select and their decoders.

use crate::model::{Event, HistoryEntry, Severity, Status, Trigger};
use crate::store::{Delivery, DeliveryAttempt, Result, StoreError, Subscription};
use wangge_pg::Row;

pub(super) const EVENT_COLS: &str = "id, version, component_id, type, severity, status, raised_at_ns, \
     cleared_at_ns, count, department, deadline_ns, overdue, late, trigger_quantity, trigger_value, \
     trigger_threshold, trigger_ts_ns, created_at_ns, acknowledged_at_ns, closed_at_ns";

pub(super) const SUB_COLS: &str = "id, url, secret, department, event_types, created_at_ns, cursor";

pub(super) const DELIVERY_COLS: &str =
    "d.id, d.subscription_id, d.cursor, d.event_id, d.version, d.status, d.attempts, \
     d.next_attempt_ns, d.last_status, d.last_error, d.delivered_at_ns";

/// An event row selected with [`EVENT_COLS`]; a value the store never writes is `Corrupt`.
pub(super) fn event(row: &Row) -> Result<Event> {
    let severity: String = row.try_get(4)?;
    let status: String = row.try_get(5)?;
    let value: String = row.try_get(14)?;
    let corrupt = |what: String| StoreError::Corrupt(what);
    Ok(Event {
        id: row.try_get(0)?,
        version: row.try_get(1)?,
        component_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        severity: Severity::from_name(&severity)
            .ok_or_else(|| corrupt(format!("severity {severity:?}")))?,
        status: Status::from_name(&status).ok_or_else(|| corrupt(format!("status {status:?}")))?,
        raised_at_ns: row.try_get(6)?,
        cleared_at_ns: row.try_get(7)?,
        count: row.try_get(8)?,
        department: row.try_get(9)?,
        deadline_ns: row.try_get(10)?,
        overdue: row.try_get(11)?,
        late: row.try_get(12)?,
        trigger: Trigger {
            quantity: row.try_get(13)?,
            value: serde_json::from_str(&value)
                .map_err(|_| corrupt(format!("trigger value {value:?}")))?,
            threshold: row.try_get(15)?,
            ts_ns: row.try_get(16)?,
        },
        created_at_ns: row.try_get(17)?,
        acknowledged_at_ns: row.try_get(18)?,
        closed_at_ns: row.try_get(19)?,
    })
}

pub(super) fn events(rows: &[Row]) -> Result<Vec<Event>> {
    rows.iter().map(event).collect()
}

/// A history row: at_ns, actor, action, from_status, to_status, department, note.
pub(super) fn history(row: &Row) -> Result<HistoryEntry> {
    Ok(HistoryEntry {
        at: crate::model::rfc3339(row.try_get(0)?),
        actor: row.try_get(1)?,
        action: row.try_get(2)?,
        from_status: row.try_get(3)?,
        to_status: row.try_get(4)?,
        department: row.try_get(5)?,
        note: row.try_get(6)?,
    })
}

/// A subscription row selected with [`SUB_COLS`] starting at column `at`.
pub(super) fn subscription(row: &Row, at: usize) -> Result<Subscription> {
    let types: String = row.try_get(at + 4)?;
    Ok(Subscription {
        id: row.try_get(at)?,
        url: row.try_get(at + 1)?,
        secret: row.try_get(at + 2)?,
        department: row.try_get(at + 3)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        created_at_ns: row.try_get(at + 5)?,
        cursor: row.try_get(at + 6)?,
    })
}

/// A delivery row selected with [`DELIVERY_COLS`] (columns 0 to 10).
pub(super) fn delivery(row: &Row) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get(0)?,
        subscription_id: row.try_get(1)?,
        cursor: row.try_get(2)?,
        event_id: row.try_get(3)?,
        version: row.try_get(4)?,
        status: row.try_get(5)?,
        attempts: row.try_get(6)?,
        next_attempt_ns: row.try_get(7)?,
        last_status: row.try_get(8)?,
        last_error: row.try_get(9)?,
        delivered_at_ns: row.try_get(10)?,
    })
}

/// An attempt's columns delivery_uid, at_ns, http_status, error, starting at column `at`.
pub(super) fn attempt(row: &Row, at: usize) -> Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        delivery_uid: row.try_get(at)?,
        at_ns: row.try_get(at + 1)?,
        http_status: row.try_get(at + 2)?,
        error: row.try_get(at + 3)?,
    })
}
