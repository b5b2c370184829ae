//! Rows to domain values: the column lists the queries select and their decoders.

use crate::model::{Event, HistoryEntry};
use crate::store::events::{event_from_row, history_from_row};
use crate::store::subscriptions::{attempt_from_row, delivery_from_row, subscription_from_row};
use crate::store::{Delivery, DeliveryAttempt, Result, StoreError, Subscription};
use wangge_pg::Row;

pub(super) use crate::store::events::EVENT_COLS;

pub(super) use crate::store::subscriptions::{DELIVERY_COLS, SUB_COLS};

/// An event row selected with [`EVENT_COLS`]; a value the store never writes is `Corrupt`.
pub(super) fn event(row: &Row) -> Result<Event> {
    event_from_row(row)?.map_err(StoreError::Corrupt)
}

pub(super) fn events(rows: &[Row]) -> Result<Vec<Event>> {
    rows.iter().map(event).collect()
}

/// A history row: at_ns, actor, action, from_status, to_status, department, note.
pub(super) fn history(row: &Row) -> Result<HistoryEntry> {
    Ok(history_from_row(row)?)
}

/// A subscription row selected with [`SUB_COLS`] starting at column `at`.
pub(super) fn subscription(row: &Row, at: usize) -> Result<Subscription> {
    Ok(subscription_from_row(row, at)?)
}

/// A delivery row selected with [`DELIVERY_COLS`] (columns 0 to 10).
pub(super) fn delivery(row: &Row) -> Result<Delivery> {
    Ok(delivery_from_row(row)?)
}

/// An attempt's columns delivery_uid, at_ns, http_status, error, starting at column `at`.
pub(super) fn attempt(row: &Row, at: usize) -> Result<DeliveryAttempt> {
    Ok(attempt_from_row(row, at)?)
}
