//! The outbox: every event change as JSON in `changes`, read by cursor by every delivery
//! channel, and the channels' named cursors.

use super::{Result, SqliteStore, StoreError, PAGE_MAX};
use crate::model::{Change, Event, Severity, Status, Trigger};
use rusqlite::{params, Connection, OptionalExtension};

/// The outbox (`changes`) and the named cursors of its readers.
pub trait Outbox {
    fn changes_after(&self, cursor: i64, limit: usize) -> Result<Vec<Change>>;
    fn last_cursor(&self) -> Result<i64>;
    fn get_cursor(&self, name: &str) -> Result<i64>;
    fn set_cursor(&self, name: &str, cursor: i64) -> Result<()>;
}

/// Appends the event's new JSON to the outbox; returns the change with its cursor.
pub(super) fn record_change(conn: &Connection, e: &Event, now_ns: i64) -> Result<Change> {
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

impl Outbox for SqliteStore {
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

    fn last_cursor(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(cursor), 0) FROM changes", [], |r| {
                r.get(0)
            })?)
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
