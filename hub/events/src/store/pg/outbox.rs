//! The outbox on PostgreSQL: `changes`, whose cursors commit in ascending order, and the named
//! cursors of its readers.

use super::{page, DbResult, PgStore};
use crate::model::{Change, Event};
use crate::store::{event_from_body, Outbox, Result, StoreError};
use wangge_pg::Transaction;

/// The advisory lock key (`pg_advisory_xact_lock`) that orders outbox appends across hubs.
const OUTBOX_LOCK: i64 = 0x7761_6e67_6765_6f62; // "wanggeob"

/// Appends the event's new JSON to the outbox; returns the change with its cursor.
///
/// The cursor is drawn under [`OUTBOX_LOCK`], held until this transaction commits: the next
/// append anywhere in the cluster waits for this commit, so a change never commits after one
/// with a higher cursor and a reader polling `changes_after` never skips it. The lock is taken
/// last in the transaction, keeping its hold to the commit itself.
pub(super) async fn record_change(
    tx: &Transaction<'_>,
    e: &Event,
    now_ns: i64,
) -> DbResult<Change> {
    let body = e.to_json().to_string();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
        .await?;
    let row = tx
        .query_one(
            "INSERT INTO changes (cursor, event_id, version, at_ns, body) \
             VALUES (nextval('changes_cursor'), $1, $2, $3, $4) RETURNING cursor",
            &[&e.id, &e.version, &now_ns, &body],
        )
        .await?;
    Ok(Change {
        cursor: row.try_get(0)?,
        event: e.clone(),
        body,
    })
}

impl Outbox for PgStore {
    fn changes_after(&self, cursor: i64, limit: usize) -> Result<Vec<Change>> {
        let rows = self.pg.query(
            "SELECT cursor, body FROM changes WHERE cursor > $1 ORDER BY cursor LIMIT $2",
            &[&cursor, &page(limit)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.try_get(1)?;
            // The event as it was at that change, from the outbox body (what consumers receive).
            let event = event_from_body(&body).map_err(StoreError::Corrupt)?;
            out.push(Change {
                cursor: row.try_get(0)?,
                event,
                body,
            });
        }
        Ok(out)
    }

    fn last_cursor(&self) -> Result<i64> {
        let row = self
            .pg
            .query_opt("SELECT COALESCE(MAX(cursor), 0) FROM changes", &[])?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    fn get_cursor(&self, name: &str) -> Result<i64> {
        let row = self
            .pg
            .query_opt("SELECT cursor FROM cursors WHERE name = $1", &[&name])?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    fn set_cursor(&self, name: &str, cursor: i64) -> Result<()> {
        self.pg.execute(
            "INSERT INTO cursors (name, cursor) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
            &[&name, &cursor],
        )?;
        Ok(())
    }
}
