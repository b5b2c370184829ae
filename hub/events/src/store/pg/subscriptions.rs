//! Webhook subscriptions and their deliveries on PostgreSQL. Several hubs fan out and attempt
//! at once: a delivery is created once per (subscription, change) whoever fans it out, and is
//! claimed by one hub at a time for [`DELIVERY_LEASE_NS`].

use super::rows::{self, DELIVERY_COLS, SUB_COLS};
use super::{page, PgStore};
use crate::store::{
    AttemptOutcome, Delivery, DeliveryAttempt, FanOutPage, Result, Subscription, SubscriptionSpec,
    Subscriptions,
};
use std::collections::HashMap;

/// How long a claimed delivery belongs to the hub that claimed it. Longer than any attempt (the
/// webhook timeout defaults to 10 s); a hub that dies mid-attempt leaves it to another hub after
/// this, which then attempts it again (at least once).
pub const DELIVERY_LEASE_NS: i64 = 120 * 1_000_000_000;

impl Subscriptions for PgStore {
    fn create_subscription(&self, spec: SubscriptionSpec<'_>) -> Result<Subscription> {
        let types = serde_json::to_string(spec.event_types).unwrap_or_else(|_| "[]".into());
        // Uncommitted changes all have cursors above the committed maximum (they are drawn in
        // commit order), so the subscription receives every change that commits after this.
        let row = self.pg.query_opt(
            &format!(
                "INSERT INTO subscriptions (url, secret, department, event_types, created_at_ns, cursor) \
                 VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(MAX(cursor), 0) FROM changes)) \
                 RETURNING {SUB_COLS}"
            ),
            &[&spec.url, &spec.secret, &spec.department, &types, &spec.created_at_ns],
        )?;
        let row = row.ok_or_else(|| {
            crate::store::StoreError::Corrupt("INSERT … RETURNING gave no row".into())
        })?;
        rows::subscription(&row, 0)
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let rows = self.pg.query(
            &format!("SELECT {SUB_COLS} FROM subscriptions ORDER BY id"),
            &[],
        )?;
        rows.iter().map(|r| rows::subscription(r, 0)).collect()
    }

    fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        let sql = format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = $1");
        self.pg
            .query_opt(&sql, &[&id])?
            .map(|r| rows::subscription(&r, 0))
            .transpose()
    }

    fn delete_subscription(&self, id: i64) -> Result<bool> {
        self.write(async |tx| {
            let n = tx
                .execute("DELETE FROM subscriptions WHERE id = $1", &[&id])
                .await?;
            tx.execute(
                "DELETE FROM delivery_attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE subscription_id = $1)",
                &[&id],
            )
            .await?;
            tx.execute("DELETE FROM deliveries WHERE subscription_id = $1", &[&id])
                .await?;
            Ok(Ok(n > 0))
        })
    }

    fn enqueue_deliveries(&self, page: FanOutPage<'_>) -> Result<()> {
        let cursors: Vec<i64> = page.changes.iter().map(|c| c.0).collect();
        let event_ids: Vec<i64> = page.changes.iter().map(|c| c.1).collect();
        let versions: Vec<i64> = page.changes.iter().map(|c| c.2).collect();
        self.write(async |tx| {
            // One statement for the page; a delivery another hub already created is left as is.
            tx.execute(
                "INSERT INTO deliveries (subscription_id, cursor, event_id, version, status, next_attempt_ns) \
                 SELECT $1, c, e, v, 'pending', $5 \
                 FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS page (c, e, v) \
                 ON CONFLICT DO NOTHING",
                &[&page.subscription_id, &cursors, &event_ids, &versions, &page.now_ns],
            )
            .await?;
            tx.execute(
                "UPDATE subscriptions SET cursor = GREATEST(cursor, $2) WHERE id = $1",
                &[&page.subscription_id, &page.up_to],
            )
            .await?;
            Ok(Ok(()))
        })
    }

    /// Claims the due deliveries: rows another hub holds (locked, or leased) are skipped, and
    /// the claimed ones are leased to this hub until `now_ns + DELIVERY_LEASE_NS` (or until
    /// `record_attempt`).
    fn due_deliveries(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, String, Subscription)>> {
        let sql = format!(
            "WITH due AS (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_ns <= $1 \
               AND (claimed_until_ns IS NULL OR claimed_until_ns <= $1) \
               ORDER BY next_attempt_ns, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d SET claimed_until_ns = $3 FROM due, changes c, subscriptions s \
             WHERE d.id = due.id AND c.cursor = d.cursor AND s.id = d.subscription_id \
             RETURNING {DELIVERY_COLS}, c.body, s.{}",
            SUB_COLS.replace(", ", ", s.")
        );
        let until = now_ns.saturating_add(DELIVERY_LEASE_NS);
        let rows = self.pg.query(&sql, &[&now_ns, &page(limit), &until])?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok((
                    rows::delivery(r)?,
                    r.try_get(11)?,
                    rows::subscription(r, 12)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|(d, _, _)| (d.next_attempt_ns, d.id));
        Ok(out)
    }

    /// The earliest time a pending delivery may be attempted, counting other hubs' leases.
    fn next_due_ns(&self) -> Result<Option<i64>> {
        let row = self.pg.query_opt(
            "SELECT MIN(GREATEST(next_attempt_ns, COALESCE(claimed_until_ns, next_attempt_ns))) \
             FROM deliveries WHERE status = 'pending'",
            &[],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
    }

    fn record_attempt(&self, delivery_id: i64, o: &AttemptOutcome, now_ns: i64) -> Result<()> {
        let (status, next, delivered) = o.delivery_state(now_ns);
        self.write(async |tx| {
            tx.execute(
                "INSERT INTO delivery_attempts (delivery_id, delivery_uid, at_ns, http_status, error) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&delivery_id, &o.delivery_uid, &now_ns, &o.http_status, &o.error],
            )
            .await?;
            tx.execute(
                "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_ns = $3, \
                 last_status = $4, last_error = $5, delivered_at_ns = $6, claimed_until_ns = NULL \
                 WHERE id = $1",
                &[&delivery_id, &status, &next, &o.http_status, &o.error, &delivered],
            )
            .await?;
            Ok(Ok(()))
        })
    }

    fn deliveries(
        &self,
        subscription_id: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
        let ds = self.pg.query(
            &format!(
                "SELECT {DELIVERY_COLS} FROM deliveries d WHERE d.subscription_id = $1 \
                 ORDER BY d.id DESC LIMIT $2"
            ),
            &[&subscription_id, &page(limit)],
        )?;
        let ds = ds.iter().map(rows::delivery).collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = ds.iter().map(|d| d.id).collect();
        // Every attempt of the page in one query, in the order they were made.
        let attempts = self.pg.query(
            "SELECT delivery_id, delivery_uid, at_ns, http_status, error FROM delivery_attempts \
             WHERE delivery_id = ANY($1) ORDER BY id",
            &[&ids],
        )?;
        let mut by_delivery: HashMap<i64, Vec<DeliveryAttempt>> = HashMap::new();
        for row in &attempts {
            let id: i64 = row.try_get(0)?;
            by_delivery
                .entry(id)
                .or_default()
                .push(rows::attempt(row, 1)?);
        }
        Ok(ds
            .into_iter()
            .map(|d| {
                let attempts = by_delivery.remove(&d.id).unwrap_or_default();
                (d, attempts)
            })
            .collect())
    }
}
