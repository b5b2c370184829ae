//! Attachment metadata: which photo (by hash) belongs to which event, who uploaded it, which
//! transition referenced it, who deleted it. The bytes are the blob store's
//! ([`crate::attachments::BlobStore`]); this is what the history and the audit need.
//!
//! A transition that references photos links them in its own transaction, so a resolve that
//! "has its photo" can never be committed without it (and a photo is referenced once).
//! An upload writes a history row (`attachment.upload`) with its row; a deletion keeps the row
//! (who, when, which hash) and writes a history row and an audit row in one transaction.

use super::events::transition_in;
use super::{Result, SqliteStore, StoreError};
use crate::columns::Columns;
use crate::model::{Change, Status};
use crate::store::Transition;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A photo to record on an event (its bytes already in the blob store).
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    pub event_id: i64,
    pub sha256: &'a str,
    pub content_type: &'a str,
    pub bytes: u64,
    /// As the uploader named it (cleaned of control characters and paths, at most 255 bytes).
    pub filename: Option<&'a str>,
    /// The actor's label (`sw/wang`).
    pub uploaded_by: &'a str,
    pub at_ns: i64,
    /// Whether a location was removed from its metadata.
    pub location_removed: bool,
    /// Most live photos the event may hold.
    pub per_event_max: u32,
}

/// A photo as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: i64,
    pub event_id: i64,
    pub sha256: String,
    pub content_type: String,
    pub bytes: i64,
    pub filename: Option<String>,
    pub uploaded_by: String,
    pub uploaded_at_ns: i64,
    pub location_removed: bool,
    /// The history row of the transition that referenced it.
    pub history_id: Option<i64>,
    pub deleted_by: Option<String>,
    pub deleted_at_ns: Option<i64>,
}

/// A deletion: who asks, and their department (for the audit row).
#[derive(Debug, Clone, Copy)]
pub struct Deletion<'a> {
    pub event_id: i64,
    pub id: i64,
    /// The actor's label, written to the history.
    pub actor: &'a str,
    /// The actor's name and department, written to the audit log.
    pub actor_name: &'a str,
    pub department: Option<&'a str>,
    pub at_ns: i64,
}

/// Attachment metadata, next to [`super::EventLog`] (a PostgreSQL store implements both).
pub trait Attachments {
    /// Records a photo; `Err(Limit)` when the event already holds `per_event_max`.
    fn add_attachment(&self, a: &NewAttachment<'_>) -> Result<Attachment>;
    /// Photo `id` of event `event_id`, deleted or not.
    fn attachment(&self, event_id: i64, id: i64) -> Result<Option<Attachment>>;
    /// The event's photos, deleted ones included (they carry `deleted_at_ns`), oldest first.
    fn attachments(&self, event_id: i64) -> Result<Vec<Attachment>>;
    /// Marks the photo deleted, with a history row and an audit row naming its hash. Returns it
    /// and whether another live photo still uses the same bytes (then the blob must stay).
    fn delete_attachment(&self, d: Deletion<'_>) -> Result<(Attachment, bool)>;
    /// Applies a transition that references `attachment_ids` (photos of the same event, live,
    /// not referenced by an earlier transition), all in one transaction.
    fn transition_with_attachments(
        &self,
        t: Transition<'_>,
        attachment_ids: &[i64],
    ) -> Result<Change>;
    /// Whether a live photo records `sha256` (the blob store keeps its bytes while one does).
    fn hash_in_use(&self, sha256: &str) -> Result<bool>;
    /// The ids of the event's history rows, in the order [`super::EventLog::history`] lists
    /// them (what [`Attachment::history_id`] points to).
    fn history_ids(&self, event_id: i64) -> Result<Vec<i64>>;
}

/// The history note of an upload.
pub(super) fn uploaded_note(a: &Attachment) -> String {
    format!(
        "attachment {} uploaded (sha256 {}, {}, {} bytes)",
        a.id, a.sha256, a.content_type, a.bytes
    )
}

pub(super) const COLS: &str = "id, event_id, sha256, content_type, bytes, filename, uploaded_by, \
    uploaded_at_ns, location_removed, history_id, deleted_by, deleted_at_ns";

/// An attachment row of [`COLS`] (either back end).
pub(super) fn attachment_from_row<R: Columns>(r: &R) -> std::result::Result<Attachment, R::Error> {
    Ok(from_columns!(
        r,
        Attachment {
            id,
            event_id,
            sha256,
            content_type,
            bytes,
            filename,
            uploaded_by,
            uploaded_at_ns,
            location_removed,
            history_id,
            deleted_by,
            deleted_at_ns
        }
    ))
}

fn query(conn: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| attachment_from_row(r))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn one(conn: &Connection, event_id: i64, id: i64) -> Result<Option<Attachment>> {
    let sql = format!("SELECT {COLS} FROM attachments WHERE event_id = ?1 AND id = ?2");
    Ok(query(conn, &sql, &[&event_id, &id])?.pop())
}

fn hash_in_use(conn: &Connection, sha256: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM attachments WHERE sha256 = ?1 AND deleted_at_ns IS NULL LIMIT 1",
        )?
        .query_row([sha256], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Why attachment `id` cannot be referenced by a transition of event `event_id`, if it cannot.
fn unusable(conn: &Connection, event_id: i64, id: i64) -> Result<Option<String>> {
    Ok(why_unusable(
        event_id,
        id,
        one(conn, event_id, id)?.as_ref(),
    ))
}

/// Why attachment `id`, stored as `a` among event `event_id`'s (None: not among them), cannot
/// be referenced by a transition of that event, if it cannot (the same on both back ends).
pub(super) fn why_unusable(event_id: i64, id: i64, a: Option<&Attachment>) -> Option<String> {
    match a {
        None => Some(format!(
            "attachment {id} is not an attachment of event {event_id}"
        )),
        Some(a) if a.deleted_at_ns.is_some() => Some(format!("attachment {id} was deleted")),
        Some(a) if a.history_id.is_some() => Some(format!(
            "attachment {id} is already referenced by an earlier transition"
        )),
        Some(_) => None,
    }
}

impl Attachments for SqliteStore {
    fn add_attachment(&self, a: &NewAttachment<'_>) -> Result<Attachment> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let status: String = tx
            .prepare_cached("SELECT status FROM events WHERE id = ?1")?
            .query_row([a.event_id], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::NotFound(a.event_id))?;
        let live: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM attachments WHERE event_id = ?1 AND deleted_at_ns IS NULL",
            )?
            .query_row([a.event_id], |r| r.get(0))?;
        if live >= i64::from(a.per_event_max) {
            return Err(StoreError::Limit(format!(
                "event {} already holds {live} attachments, the most allowed \
                 ([events.attachments] per_event_max = {}); delete one first",
                a.event_id, a.per_event_max
            )));
        }
        tx.prepare_cached(
            "INSERT INTO attachments (event_id, sha256, content_type, bytes, filename, uploaded_by, \
             uploaded_at_ns, location_removed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            a.event_id,
            a.sha256,
            a.content_type,
            a.bytes as i64,
            a.filename,
            a.uploaded_by,
            a.at_ns,
            a.location_removed as i64
        ])?;
        let id = tx.last_insert_rowid();
        let row = one(&tx, a.event_id, id)?.ok_or(StoreError::NotFound(a.event_id))?;
        // The upload is in the event's history on its own (before any transition names it).
        tx.prepare_cached(
            "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, to_status, note) \
             VALUES (?1, ?2, ?3, 'attachment.upload', ?4, ?4, ?5)",
        )?
        .execute(params![a.event_id, a.at_ns, a.uploaded_by, status, uploaded_note(&row)])?;
        tx.commit()?;
        Ok(row)
    }

    fn attachment(&self, event_id: i64, id: i64) -> Result<Option<Attachment>> {
        one(&self.conn(), event_id, id)
    }

    fn attachments(&self, event_id: i64) -> Result<Vec<Attachment>> {
        let sql = format!("SELECT {COLS} FROM attachments WHERE event_id = ?1 ORDER BY id");
        query(&self.conn(), &sql, &[&event_id])
    }

    fn delete_attachment(&self, d: Deletion<'_>) -> Result<(Attachment, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let a = match one(&tx, d.event_id, d.id)? {
            None => return Err(StoreError::AttachmentNotFound(d.id)),
            Some(a) if a.deleted_at_ns.is_some() => {
                return Err(StoreError::Conflict(format!(
                    "attachment {} was already deleted",
                    d.id
                )))
            }
            Some(a) => a,
        };
        tx.prepare_cached(
            "UPDATE attachments SET deleted_by = ?2, deleted_at_ns = ?3 WHERE id = ?1",
        )?
        .execute(params![d.id, d.actor, d.at_ns])?;
        let status: String = tx
            .prepare_cached("SELECT status FROM events WHERE id = ?1")?
            .query_row([d.event_id], |r| r.get(0))?;
        let status = Status::from_name(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?;
        let what = format!(
            "attachment {} deleted (sha256 {}, {}, {} bytes)",
            a.id, a.sha256, a.content_type, a.bytes
        );
        tx.prepare_cached(
            "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, to_status, note) \
             VALUES (?1, ?2, ?3, 'attachment.delete', ?4, ?4, ?5)",
        )?
        .execute(params![d.event_id, d.at_ns, d.actor, status.name(), what])?;
        tx.prepare_cached(
            "INSERT INTO audit (at_ns, actor, department, action, event_id, reason) \
             VALUES (?1, ?2, ?3, 'attachment.delete', ?4, ?5)",
        )?
        .execute(params![
            d.at_ns,
            d.actor_name,
            d.department,
            d.event_id,
            what
        ])?;
        let shared = hash_in_use(&tx, &a.sha256)?;
        tx.commit()?;
        Ok((a, shared))
    }

    fn transition_with_attachments(
        &self,
        t: Transition<'_>,
        attachment_ids: &[i64],
    ) -> Result<Change> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for &id in attachment_ids {
            if let Some(why) = unusable(&tx, t.id, id)? {
                return Err(StoreError::Attachment(why));
            }
        }
        let (change, history_id) = transition_in(&tx, &self.deadlines, t)?;
        for &id in attachment_ids {
            tx.prepare_cached("UPDATE attachments SET history_id = ?2 WHERE id = ?1")?
                .execute(params![id, history_id])?;
        }
        tx.commit()?;
        Ok(change)
    }

    fn hash_in_use(&self, sha256: &str) -> Result<bool> {
        hash_in_use(&self.conn(), sha256)
    }

    fn history_ids(&self, event_id: i64) -> Result<Vec<i64>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id FROM event_history WHERE event_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([event_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
