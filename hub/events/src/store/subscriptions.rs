//! Webhook subscriptions and their deliveries: fan-out from the outbox, due attempts, outcomes.

use super::{Result, SqliteStore, PAGE_MAX};
use crate::columns::Columns;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

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

impl AttemptOutcome {
    /// What the delivery becomes after this attempt at `now_ns`: (status, next attempt,
    /// delivered at). The same on both back ends.
    pub(super) fn delivery_state(&self, now_ns: i64) -> (&'static str, i64, Option<i64>) {
        if self.success {
            ("delivered", now_ns, Some(now_ns))
        } else {
            match self.retry_at_ns {
                Some(t) => ("pending", t, None),
                None => ("failed", now_ns, None),
            }
        }
    }
}

/// What a new subscription is made of (its id and fan-out cursor are the store's).
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionSpec<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    /// Deliver only events this department may see (None = all, admin subscriptions).
    pub department: Option<&'a str>,
    /// Event type patterns (`fire.*`); empty = all.
    pub event_types: &'a [String],
    pub created_at_ns: i64,
}

/// One page of the outbox fanned out to one subscription.
#[derive(Debug, Clone, Copy)]
pub struct FanOutPage<'a> {
    pub subscription_id: i64,
    /// (cursor, event id, version) of each change the subscription receives: a delivery each.
    pub changes: &'a [(i64, i64, i64)],
    /// The last cursor the page read (received or not): the subscription's cursor moves here.
    pub up_to: i64,
    /// When the deliveries are first due.
    pub now_ns: i64,
}

/// Webhook subscriptions and their deliveries.
pub trait Subscriptions {
    /// A new subscription receives changes committed after its creation.
    fn create_subscription(&self, spec: SubscriptionSpec<'_>) -> Result<Subscription>;
    fn subscriptions(&self) -> Result<Vec<Subscription>>;
    fn subscription(&self, id: i64) -> Result<Option<Subscription>>;
    fn delete_subscription(&self, id: i64) -> Result<bool>;
    /// Creates the deliveries of one fan-out page and moves the subscription's fan-out cursor,
    /// atomically.
    fn enqueue_deliveries(&self, page: FanOutPage<'_>) -> Result<()>;
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
}

/// A subscription row of [`SUB_COLS`] from column `at` on (either back end).
pub(super) fn subscription_from_row<R: Columns>(
    row: &R,
    at: usize,
) -> std::result::Result<Subscription, R::Error> {
    let patterns = |json: String| serde_json::from_str(&json).unwrap_or_default();
    Ok(from_columns!(
        row,
        at at,
        Subscription {
            id,
            url,
            secret,
            department,
            event_types => patterns,
            created_at_ns,
            cursor
        }
    ))
}

/// An attempt's columns delivery_uid, at_ns, http_status, error from column `at` on (either
/// back end).
pub(super) fn attempt_from_row<R: Columns>(
    row: &R,
    at: usize,
) -> std::result::Result<DeliveryAttempt, R::Error> {
    Ok(from_columns!(
        row,
        at at,
        DeliveryAttempt {
            delivery_uid,
            at_ns,
            http_status,
            error
        }
    ))
}

pub(super) const SUB_COLS: &str = "id, url, secret, department, event_types, created_at_ns, cursor";
pub(super) const DELIVERY_COLS: &str =
    "d.id, d.subscription_id, d.cursor, d.event_id, d.version, d.status, d.attempts, \
     d.next_attempt_ns, d.last_status, d.last_error, d.delivered_at_ns";

/// A delivery row of [`DELIVERY_COLS`] (columns 0 to 10, either back end).
pub(super) fn delivery_from_row<R: Columns>(row: &R) -> std::result::Result<Delivery, R::Error> {
    Ok(from_columns!(
        row,
        Delivery {
            id,
            subscription_id,
            cursor,
            event_id,
            version,
            status,
            attempts,
            next_attempt_ns,
            last_status,
            last_error,
            delivered_at_ns
        }
    ))
}

impl Subscriptions for SqliteStore {
    fn create_subscription(&self, spec: SubscriptionSpec<'_>) -> Result<Subscription> {
        let conn = self.conn();
        let types = serde_json::to_string(spec.event_types).unwrap_or_else(|_| "[]".into());
        conn.execute(
            "INSERT INTO subscriptions (url, secret, department, event_types, created_at_ns, cursor) \
             VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(cursor), 0) FROM changes))",
            params![
                spec.url,
                spec.secret,
                spec.department,
                types,
                spec.created_at_ns
            ],
        )?;
        let id = conn.last_insert_rowid();
        Ok(conn.query_row(
            &format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = ?1"),
            [id],
            |r| subscription_from_row(r, 0),
        )?)
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {SUB_COLS} FROM subscriptions ORDER BY id"))?;
        let rows = stmt.query_map([], |r| subscription_from_row(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = ?1"),
                [id],
                |r| subscription_from_row(r, 0),
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

    fn enqueue_deliveries(&self, page: FanOutPage<'_>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (cursor, event_id, version) in page.changes {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (subscription_id, cursor, event_id, version, status, next_attempt_ns) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?
            .execute(params![page.subscription_id, cursor, event_id, version, page.now_ns])?;
        }
        tx.execute(
            "UPDATE subscriptions SET cursor = MAX(cursor, ?2) WHERE id = ?1",
            params![page.subscription_id, page.up_to],
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
            let s = subscription_from_row(r, 12)?;
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
        let (status, next, delivered) = o.delivery_state(now_ns);
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
                |r| delivery_from_row(r),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let mut attempts_stmt = conn.prepare_cached(
            "SELECT delivery_uid, at_ns, http_status, error FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id",
        )?;
        let mut out = Vec::with_capacity(ds.len());
        for d in ds {
            let attempts = attempts_stmt
                .query_map([d.id], |r| attempt_from_row(r, 0))?
                .collect::<rusqlite::Result<_>>()?;
            out.push((d, attempts));
        }
        Ok(out)
    }
}
