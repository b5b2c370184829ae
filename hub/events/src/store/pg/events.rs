//! Events and their history on PostgreSQL: the SQLite store's rules, with row locks (`FOR
//! UPDATE`) in place of SQLite's single writer, so hubs changing one event take turns.

use super::outbox::record_change;
use super::rows::{self, EVENT_COLS};
use super::{is_unique_violation, page, DbResult, PgStore};
use crate::lifecycle::Action;
use crate::model::{Change, Event, HistoryEntry, Status};
use crate::rules::{Condition, ConditionKind};
use crate::store::events::{cleared, reopen_conflict, repeated};
use crate::store::{EventLog, ListQuery, Result, StoreError, Transition};
use wangge_pg::Transaction;

/// How many times a raise looks again after losing the insert to another hub. One is enough
/// (the winner's row is then visible); the bound makes a broken index an error, not a loop.
const RAISE_ROUNDS_MAX: usize = 3;

/// The active event of (component, type), locked until the transaction ends.
async fn active_event(
    tx: &Transaction<'_>,
    component_id: &str,
    event_type: &str,
) -> DbResult<Option<Result<Event>>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE component_id = $1 AND type = $2 AND status <> 'closed' \
         FOR UPDATE"
    );
    let row = tx.query_opt(&sql, &[&component_id, &event_type]).await?;
    Ok(row.as_ref().map(rows::event))
}

/// Writes the event's current fields (the caller bumped `version`).
async fn save_event(tx: &Transaction<'_>, e: &Event) -> DbResult<u64> {
    tx.execute(
        "UPDATE events SET version = $2, status = $3, cleared_at_ns = $4, count = $5, department = $6, \
         deadline_ns = $7, overdue = $8, acknowledged_at_ns = $9, closed_at_ns = $10 WHERE id = $1",
        &[
            &e.id,
            &e.version,
            &e.status.name(),
            &e.cleared_at_ns,
            &e.count,
            &e.department,
            &e.deadline_ns,
            &e.overdue,
            &e.acknowledged_at_ns,
            &e.closed_at_ns,
        ],
    )
    .await
}

/// One history row.
struct HistoryRow<'a> {
    event_id: i64,
    at_ns: i64,
    actor: &'a str,
    action: &'a str,
    from: Option<Status>,
    to: Status,
    department: Option<&'a str>,
    note: Option<&'a str>,
}

impl<'a> HistoryRow<'a> {
    /// A row written by the rules or the clock (actor `system`), without department or note.
    fn system(e: &Event, at_ns: i64, action: &'a str, from: Option<Status>) -> HistoryRow<'a> {
        HistoryRow {
            event_id: e.id,
            at_ns,
            actor: "system",
            action,
            from,
            to: e.status,
            department: None,
            note: None,
        }
    }

    /// Inserts the row; returns its id (what an attachment's `history_id` points to).
    async fn add(&self, tx: &Transaction<'_>) -> DbResult<i64> {
        tx.query_one(
            "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, to_status, \
             department, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &self.event_id,
                &self.at_ns,
                &self.actor,
                &self.action,
                &self.from.map(Status::name),
                &self.to.name(),
                &self.department,
                &self.note,
            ],
        )
        .await?
        .try_get(0)
    }
}

/// A repeat of the active event `e`, or None when the raise is stale (a replay, or a raise while
/// the condition still holds).
async fn repeat(
    tx: &Transaction<'_>,
    e: Event,
    c: &Condition,
    now_ns: i64,
) -> DbResult<Option<Change>> {
    let Some(e) = repeated(e, c) else {
        return Ok(None);
    };
    save_event(tx, &e).await?;
    HistoryRow::system(&e, now_ns, "repeat", Some(e.status))
        .add(tx)
        .await?;
    Ok(Some(record_change(tx, &e, now_ns).await?))
}

impl PgStore {
    /// Inserts a new event for `c` unless an active one exists by then (another hub won the
    /// race): None then, and the caller repeats on that one.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        c: &Condition,
        now_ns: i64,
    ) -> DbResult<Option<Result<Event>>> {
        let deadline_ns = now_ns.saturating_add(self.deadlines.for_severity(c.severity));
        let sql = format!(
            "INSERT INTO events (version, component_id, type, severity, status, raised_at_ns, count, \
             deadline_ns, late, trigger_quantity, trigger_value, trigger_threshold, trigger_ts_ns, \
             created_at_ns) VALUES (1, $1, $2, $3, 'open', $4, 1, $5, $6, $7, $8, $9, $4, $10) \
             ON CONFLICT (component_id, type) WHERE status <> 'closed' DO NOTHING RETURNING {EVENT_COLS}"
        );
        let row = tx
            .query_opt(
                &sql,
                &[
                    &c.component_id,
                    &c.event_type,
                    &c.severity.name(),
                    &c.trigger.ts_ns,
                    &deadline_ns,
                    &c.late,
                    &c.trigger.quantity,
                    &c.trigger.value.to_string(),
                    &c.trigger.threshold,
                    &now_ns,
                ],
            )
            .await?;
        Ok(row.as_ref().map(rows::event))
    }

    fn raise(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        self.write(async |tx| {
            for _ in 0..RAISE_ROUNDS_MAX {
                if let Some(e) = active_event(tx, &c.component_id, &c.event_type).await? {
                    return Ok(Ok(repeat(tx, refuse_on_err!(e), c, now_ns).await?));
                }
                // A backlog must not re-raise what a closed case already saw clear.
                let last_end: Option<i64> = tx
                    .query_one(
                        "SELECT MAX(COALESCE(cleared_at_ns, trigger_ts_ns)) FROM events \
                         WHERE component_id = $1 AND type = $2",
                        &[&c.component_id, &c.event_type],
                    )
                    .await?
                    .try_get(0)?;
                if last_end.is_some_and(|end| c.trigger.ts_ns <= end) {
                    return Ok(Ok(None));
                }
                // Lost to a concurrent raise: its row is visible to the next statement.
                let Some(e) = self.insert(tx, c, now_ns).await? else {
                    continue;
                };
                let e = refuse_on_err!(e);
                HistoryRow::system(&e, now_ns, "raise", None)
                    .add(tx)
                    .await?;
                return Ok(Ok(Some(record_change(tx, &e, now_ns).await?)));
            }
            Ok(Err(StoreError::Conflict(format!(
                "raise of {} on {} kept losing to another hub",
                c.event_type, c.component_id
            ))))
        })
    }

    fn clear(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        self.write(async |tx| {
            let Some(e) = active_event(tx, &c.component_id, &c.event_type).await? else {
                return Ok(Ok(None));
            };
            let Some(e) = cleared(refuse_on_err!(e), c) else {
                return Ok(Ok(None));
            };
            save_event(tx, &e).await?;
            HistoryRow::system(&e, now_ns, "clear", Some(e.status))
                .add(tx)
                .await?;
            Ok(Ok(Some(record_change(tx, &e, now_ns).await?)))
        })
    }
}

impl PgStore {
    /// Applies a transition inside `tx` (the event row locked `FOR UPDATE`, the change drawn
    /// under the outbox lock); returns the change and the id of the history row it wrote.
    pub(super) async fn transition_in(
        &self,
        tx: &Transaction<'_>,
        t: Transition<'_>,
    ) -> DbResult<Result<(Change, i64)>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1 FOR UPDATE");
        let Some(row) = tx.query_opt(&sql, &[&t.id]).await? else {
            return Ok(Err(StoreError::NotFound(t.id)));
        };
        let before = refuse_on_err!(rows::event(&row));
        let from = before.status;
        let e = refuse_on_err!(t.apply(before, &self.deadlines));
        match save_event(tx, &e).await {
            Err(err) if is_unique_violation(&err) => return Ok(Err(reopen_conflict(&e))),
            other => other?,
        };
        let dispatched = t.req.action == Action::Dispatch;
        let history_id = HistoryRow {
            event_id: e.id,
            at_ns: t.now_ns,
            actor: t.actor,
            action: t.req.action.name(),
            from: Some(from),
            to: e.status,
            department: e.department.as_deref().filter(|_| dispatched),
            note: t.req.note.as_deref(),
        }
        .add(tx)
        .await?;
        Ok(Ok((record_change(tx, &e, t.now_ns).await?, history_id)))
    }
}

impl EventLog for PgStore {
    fn apply_condition(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        match c.kind {
            ConditionKind::Raised => self.raise(c, now_ns),
            ConditionKind::Cleared => self.clear(c, now_ns),
        }
    }

    fn transition(&self, t: Transition<'_>) -> Result<Change> {
        self.write(async |tx| Ok(self.transition_in(tx, t).await?.map(|(change, _)| change)))
    }

    fn mark_overdue(&self, now_ns: i64) -> Result<Vec<Change>> {
        self.write(async |tx| {
            // Events another hub is changing right now are flagged on a later tick.
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE NOT overdue AND status NOT IN ('resolved', 'closed') \
                 AND deadline_ns < $1 ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED"
            );
            let due = refuse_on_err!(rows::events(&tx.query(&sql, &[&now_ns]).await?));
            let mut out = Vec::with_capacity(due.len());
            for mut e in due {
                e.overdue = true;
                e.version += 1;
                save_event(tx, &e).await?;
                HistoryRow::system(&e, now_ns, "overdue", Some(e.status)).add(tx).await?;
                out.push(record_change(tx, &e, now_ns).await?);
            }
            Ok(Ok(out))
        })
    }

    fn get(&self, id: i64) -> Result<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1");
        self.pg
            .query_opt(&sql, &[&id])?
            .as_ref()
            .map(rows::event)
            .transpose()
    }

    fn history(&self, id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = self.pg.query(
            "SELECT at_ns, actor, action, from_status, to_status, department, note FROM event_history \
             WHERE event_id = $1 ORDER BY id",
            &[&id],
        )?;
        rows.iter().map(rows::history).collect()
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE ($1::TEXT IS NULL OR status = $1) \
             AND ($2::TEXT IS NULL OR type = $2) AND ($3::TEXT IS NULL OR component_id = $3) \
             AND ($4::TEXT IS NULL OR department = $4) AND ($5::BIGINT IS NULL OR raised_at_ns >= $5) \
             AND ($6::BIGINT IS NULL OR id < $6) ORDER BY id DESC LIMIT $7"
        );
        let rows = self.pg.query(
            &sql,
            &[
                &q.status.map(Status::name),
                &q.event_type,
                &q.component,
                &q.department,
                &q.since_ns,
                &q.before_id,
                &page(q.limit),
            ],
        )?;
        rows::events(&rows)
    }

    fn active_for_component(&self, component_id: &str) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE component_id = $1 AND status <> 'closed' ORDER BY id"
        );
        rows::events(&self.pg.query(&sql, &[&component_id])?)
    }

    fn created_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE created_at_ns >= $1 AND created_at_ns < $2 ORDER BY id"
        );
        rows::events(&self.pg.query(&sql, &[&from_ns, &to_ns])?)
    }

    fn open_at(&self, at_ns: i64) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE created_at_ns < $1 \
             AND (closed_at_ns IS NULL OR closed_at_ns >= $1) ORDER BY id"
        );
        rows::events(&self.pg.query(&sql, &[&at_ns])?)
    }

    fn raised_conditions(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = self.pg.query(
            "SELECT component_id, type, trigger_ts_ns FROM events \
             WHERE status <> 'closed' AND cleared_at_ns IS NULL",
            &[],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    fn set_pending(&self, component_id: &str, rule_key: &str, since_ns: Option<i64>) -> Result<()> {
        match since_ns {
            Some(since) => self.pg.execute(
                "INSERT INTO pending_conditions (component_id, rule_key, since_ns) VALUES ($1, $2, $3) \
                 ON CONFLICT (component_id, rule_key) DO UPDATE SET since_ns = excluded.since_ns",
                &[&component_id, &rule_key, &since],
            )?,
            None => self.pg.execute(
                "DELETE FROM pending_conditions WHERE component_id = $1 AND rule_key = $2",
                &[&component_id, &rule_key],
            )?,
        };
        Ok(())
    }

    fn pending_conditions(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = self.pg.query(
            "SELECT component_id, rule_key, since_ns FROM pending_conditions",
            &[],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}
