//! Events and their history: raising, repeating and clearing on a rule's verdict, transitions
//! along the closed loop, overdue flags, queries; and the rules' pending duration conditions.

use super::outbox::record_change;
use super::{Result, SqliteStore, StoreError, PAGE_MAX};
use crate::columns::Columns;
use crate::lifecycle::{self, Action};
use crate::model::{Change, Event, HistoryEntry, Severity, Status, Trigger};
use crate::rules::{Condition, ConditionKind};
use rusqlite::{params, Connection, TransactionBehavior};

/// A transition asked for by a person or the platform.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    pub action: Action,
    pub department: Option<String>,
    pub note: Option<String>,
}

/// One transition to apply: `req` on event `id`, on behalf of `actor` (its label, `sw/wang`), at `now_ns`.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub id: i64,
    pub actor: &'a str,
    pub req: &'a TransitionRequest,
    pub now_ns: i64,
}

impl Transition<'_> {
    /// `e` as this transition leaves it (status, version and the fields the action sets), or
    /// the refusal; the same on both back ends, which then store it.
    pub(super) fn apply(
        &self,
        mut e: Event,
        deadlines: &crate::lifecycle::Deadlines,
    ) -> Result<Event> {
        let req = self.req;
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
                e.acknowledged_at_ns.get_or_insert(self.now_ns);
            }
            Action::Close => e.closed_at_ns = Some(self.now_ns),
            Action::Reopen => {
                e.closed_at_ns = None;
                e.overdue = false;
                e.deadline_ns = self
                    .now_ns
                    .saturating_add(deadlines.for_severity(e.severity));
            }
            Action::Start | Action::Resolve => {}
        }
        e.status = to;
        e.version += 1;
        Ok(e)
    }
}

/// The active event `e` as `c` raising it again leaves it. A repeat is a new occurrence after
/// the condition cleared; a raise while it still holds is a duplicate (a replay, or an
/// evaluator that restarted) and changes nothing: None. The same on both back ends.
pub(super) fn repeated(mut e: Event, c: &Condition) -> Option<Event> {
    let stale = match e.cleared_at_ns {
        Some(cleared) => c.trigger.ts_ns <= cleared,
        None => true,
    };
    if stale {
        return None;
    }
    e.count += 1;
    e.version += 1;
    e.cleared_at_ns = None;
    Some(e)
}

/// The active event `e` as `c` clearing it leaves it; None if it is cleared already or `c` is
/// older than its trigger. The same on both back ends.
pub(super) fn cleared(mut e: Event, c: &Condition) -> Option<Event> {
    if e.cleared_at_ns.is_some() || c.trigger.ts_ns < e.trigger.ts_ns {
        return None;
    }
    e.cleared_at_ns = Some(c.trigger.ts_ns);
    e.version += 1;
    Some(e)
}

/// A reopened event that would be a second active one of its type on its component.
pub(super) fn reopen_conflict(e: &Event) -> StoreError {
    StoreError::Conflict(format!(
        "cannot reopen: another active {} event on {} exists",
        e.event_type, e.component_id
    ))
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

/// Events: what the rules and people change, and what the API reads.
pub trait EventLog {
    /// Applies a rule's verdict. Returns the change, or None when it changes nothing
    /// (a stale backlog raise, a clear of something not raised).
    fn apply_condition(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>>;
    fn transition(&self, t: Transition<'_>) -> Result<Change>;
    /// Flags events past their deadline (not yet resolved/closed); one change per event.
    fn mark_overdue(&self, now_ns: i64) -> Result<Vec<Change>>;
    fn get(&self, id: i64) -> Result<Option<Event>>;
    fn history(&self, id: i64) -> Result<Vec<HistoryEntry>>;
    fn list(&self, q: &ListQuery) -> Result<Vec<Event>>;
    /// Events not closed on one component.
    fn active_for_component(&self, component_id: &str) -> Result<Vec<Event>>;
    /// Events the hub registered in `[from, to)` (for the evaluation report).
    fn created_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<Event>>;
    /// Events registered before `at_ns` and not closed by it (still open, or closed later):
    /// those whose maintenance may reach into a report's range that starts at `at_ns`.
    fn open_at(&self, at_ns: i64) -> Result<Vec<Event>>;
    /// (component, type, trigger time) of every event whose condition still holds (not cleared, not closed):
    /// what the rules re-attach to after a restart.
    fn raised_conditions(&self) -> Result<Vec<(String, String, i64)>>;
    /// Records (`Some(since)`) or forgets (`None`) when a duration condition of rule `rule_key`
    /// began holding on a component, so a restart resumes its count instead of starting over.
    fn set_pending(&self, component_id: &str, rule_key: &str, since_ns: Option<i64>) -> Result<()>;
    /// Every recorded pending duration condition: (component, rule key, since).
    fn pending_conditions(&self) -> Result<Vec<(String, String, i64)>>;
}

/// What [`event_from_row`] reads, in its order (both back ends).
pub(super) const EVENT_COLS: &str = "id, version, component_id, type, severity, status, raised_at_ns, cleared_at_ns, \
     count, department, deadline_ns, overdue, late, trigger_quantity, trigger_value, trigger_threshold, \
     trigger_ts_ns, created_at_ns, acknowledged_at_ns, closed_at_ns";

/// An event row of [`EVENT_COLS`] (either back end); `Err(what)` names a value the store never
/// writes (the caller's `Corrupt`).
pub(super) fn event_from_row<R: Columns>(
    row: &R,
) -> std::result::Result<std::result::Result<Event, String>, R::Error> {
    let severity: String = row.column(4)?;
    let status: String = row.column(5)?;
    let value: String = row.column(14)?;
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
        id: row.column(0)?,
        version: row.column(1)?,
        component_id: row.column(2)?,
        event_type: row.column(3)?,
        severity,
        status,
        raised_at_ns: row.column(6)?,
        cleared_at_ns: row.column(7)?,
        count: row.column(8)?,
        department: row.column(9)?,
        deadline_ns: row.column(10)?,
        overdue: row.column(11)?,
        late: row.column(12)?,
        trigger: trigger_from_row(row, value)?,
        created_at_ns: row.column(17)?,
        acknowledged_at_ns: row.column(18)?,
        closed_at_ns: row.column(19)?,
    }))
}

/// The trigger columns (13 to 16) of an event row; `value` is column 14, already decoded.
fn trigger_from_row<R: Columns>(
    row: &R,
    value: serde_json::Value,
) -> std::result::Result<Trigger, R::Error> {
    Ok(Trigger {
        quantity: row.column(13)?,
        value,
        threshold: row.column(15)?,
        ts_ns: row.column(16)?,
    })
}

/// A history row (at_ns, actor, action, from_status, to_status, department, note), either
/// back end.
pub(super) fn history_from_row<R: Columns>(r: &R) -> std::result::Result<HistoryEntry, R::Error> {
    let at = crate::model::rfc3339;
    Ok(from_columns!(
        r,
        HistoryEntry {
            at => at,
            actor,
            action,
            from_status,
            to_status,
            department,
            note
        }
    ))
}

fn query_events(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| event_from_row(r))?;
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

/// A history row written by the rules or the clock (actor `system`), without department or note.
fn add_system_history(
    conn: &Connection,
    event_id: i64,
    at_ns: i64,
    action: &str,
    from: Option<Status>,
    to: Status,
) -> Result<()> {
    add_history(
        conn, event_id, at_ns, "system", action, from, to, None, None,
    )
    .map(|_| ())
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
) -> Result<i64> {
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
    Ok(conn.last_insert_rowid())
}

/// Applies `t` inside the caller's transaction `tx`: the event, its history row and its
/// outbox row. Returns the change and the id of the history row (what attachments point to).
pub(super) fn transition_in(
    tx: &Connection,
    deadlines: &crate::lifecycle::Deadlines,
    t: Transition<'_>,
) -> Result<(Change, i64)> {
    let Transition {
        id,
        actor,
        req,
        now_ns,
    } = t;
    let before = load_event(tx, id)?.ok_or(StoreError::NotFound(id))?;
    let from = before.status;
    let e = t.apply(before, deadlines)?;
    let to = e.status;
    if let Err(err) = save_event(tx, &e) {
        if let StoreError::Sqlite(s) = &err {
            if is_unique_violation(s) {
                return Err(reopen_conflict(&e));
            }
        }
        return Err(err);
    }
    let history_id = add_history(
        tx,
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
    let change = record_change(tx, &e, now_ns)?;
    Ok((change, history_id))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl SqliteStore {
    fn raise(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let change = match active_event(&tx, &c.component_id, &c.event_type)? {
            Some(e) => {
                let Some(e) = repeated(e, c) else {
                    return Ok(None);
                };
                save_event(&tx, &e)?;
                add_system_history(&tx, e.id, now_ns, "repeat", Some(e.status), e.status)?;
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
                add_system_history(&tx, id, now_ns, "raise", None, Status::Open)?;
                record_change(&tx, &e, now_ns)?
            }
        };
        tx.commit()?;
        Ok(Some(change))
    }

    fn clear(&self, c: &Condition, now_ns: i64) -> Result<Option<Change>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(e) = active_event(&tx, &c.component_id, &c.event_type)? else {
            return Ok(None);
        };
        let Some(e) = cleared(e, c) else {
            return Ok(None);
        };
        save_event(&tx, &e)?;
        add_system_history(&tx, e.id, now_ns, "clear", Some(e.status), e.status)?;
        let change = record_change(&tx, &e, now_ns)?;
        tx.commit()?;
        Ok(Some(change))
    }
}

impl EventLog for SqliteStore {
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

    fn transition(&self, t: Transition<'_>) -> Result<Change> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (change, _) = transition_in(&tx, &self.deadlines, t)?;
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
            add_system_history(&tx, e.id, now_ns, "overdue", Some(e.status), e.status)?;
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
        let rows = stmt.query_map([id], |r| history_from_row(r))?;
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

    fn open_at(&self, at_ns: i64) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE created_at_ns < ?1 \
             AND (closed_at_ns IS NULL OR closed_at_ns >= ?1) ORDER BY id"
        );
        query_events(&self.conn(), &sql, &[&at_ns])
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
}
