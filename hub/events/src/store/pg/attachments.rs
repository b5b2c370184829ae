//! Attachment metadata on PostgreSQL: the SQLite store's `attachments.rs`, with the event row
//! locked `FOR UPDATE` where SQLite has its single writer, so two hubs adding photos to one
//! event at once cannot both pass the per-event limit, and a transition and a deletion of one
//! event's photos take turns.

use super::{DbResult, PgStore};
use crate::model::{Change, Status};
use crate::store::attachments::uploaded_note;
use crate::store::{
    Attachment, Attachments, Deletion, NewAttachment, Result, StoreError, Transition,
};
use wangge_pg::{Row, Transaction};

use crate::store::attachments::COLS;

fn attachment(r: &Row) -> DbResult<Attachment> {
    crate::store::attachments::attachment_from_row(r)
}

/// The status of event `id`, its row locked until the transaction ends; None if there is none.
async fn lock_event(tx: &Transaction<'_>, id: i64) -> DbResult<Option<String>> {
    let row = tx
        .query_opt("SELECT status FROM events WHERE id = $1 FOR UPDATE", &[&id])
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}

async fn one(tx: &Transaction<'_>, event_id: i64, id: i64) -> DbResult<Option<Attachment>> {
    let sql = format!("SELECT {COLS} FROM attachments WHERE event_id = $1 AND id = $2");
    tx.query_opt(&sql, &[&event_id, &id])
        .await?
        .as_ref()
        .map(attachment)
        .transpose()
}

async fn hash_in_use(tx: &Transaction<'_>, sha256: &str) -> DbResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM attachments WHERE sha256 = $1 AND deleted_at_ns IS NULL LIMIT 1",
            &[&sha256],
        )
        .await?
        .is_some())
}

/// Why attachment `id` cannot be referenced by a transition of event `event_id`, if it cannot.
async fn unusable(tx: &Transaction<'_>, event_id: i64, id: i64) -> DbResult<Option<String>> {
    let a = one(tx, event_id, id).await?;
    Ok(crate::store::attachments::why_unusable(
        event_id,
        id,
        a.as_ref(),
    ))
}

impl Attachments for PgStore {
    fn add_attachment(&self, a: &NewAttachment<'_>) -> Result<Attachment> {
        self.write(async |tx| {
            let Some(status) = lock_event(tx, a.event_id).await? else {
                return Ok(Err(StoreError::NotFound(a.event_id)));
            };
            let live: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM attachments WHERE event_id = $1 AND deleted_at_ns IS NULL",
                    &[&a.event_id],
                )
                .await?
                .try_get(0)?;
            if live >= i64::from(a.per_event_max) {
                return Ok(Err(StoreError::Limit(format!(
                    "event {} already holds {live} attachments, the most allowed \
                     ([events.attachments] per_event_max = {}); delete one first",
                    a.event_id, a.per_event_max
                ))));
            }
            let sql = format!(
                "INSERT INTO attachments (event_id, sha256, content_type, bytes, filename, \
                 uploaded_by, uploaded_at_ns, location_removed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLS}"
            );
            let row = tx
                .query_one(
                    &sql,
                    &[
                        &a.event_id,
                        &a.sha256,
                        &a.content_type,
                        &(a.bytes as i64),
                        &a.filename,
                        &a.uploaded_by,
                        &a.at_ns,
                        &a.location_removed,
                    ],
                )
                .await?;
            let row = attachment(&row)?;
            tx.execute(
                "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, \
                 to_status, note) VALUES ($1, $2, $3, 'attachment.upload', $4, $4, $5)",
                &[&a.event_id, &a.at_ns, &a.uploaded_by, &status, &uploaded_note(&row)],
            )
            .await?;
            Ok(Ok(row))
        })
    }

    fn attachment(&self, event_id: i64, id: i64) -> Result<Option<Attachment>> {
        let sql = format!("SELECT {COLS} FROM attachments WHERE event_id = $1 AND id = $2");
        Ok(self
            .pg
            .query_opt(&sql, &[&event_id, &id])?
            .as_ref()
            .map(attachment)
            .transpose()?)
    }

    fn attachments(&self, event_id: i64) -> Result<Vec<Attachment>> {
        let sql = format!("SELECT {COLS} FROM attachments WHERE event_id = $1 ORDER BY id");
        let rows = self.pg.query(&sql, &[&event_id])?;
        Ok(rows.iter().map(attachment).collect::<DbResult<_>>()?)
    }

    fn delete_attachment(&self, d: Deletion<'_>) -> Result<(Attachment, bool)> {
        self.write(async |tx| {
            let status = lock_event(tx, d.event_id).await?;
            let a = match one(tx, d.event_id, d.id).await? {
                None => return Ok(Err(StoreError::AttachmentNotFound(d.id))),
                Some(a) if a.deleted_at_ns.is_some() => {
                    return Ok(Err(StoreError::Conflict(format!(
                        "attachment {} was already deleted",
                        d.id
                    ))))
                }
                Some(a) => a,
            };
            let status = status.unwrap_or_default();
            let Some(status) = Status::from_name(&status) else {
                return Ok(Err(StoreError::Corrupt(format!("status {status:?}"))));
            };
            tx.execute(
                "UPDATE attachments SET deleted_by = $2, deleted_at_ns = $3 WHERE id = $1",
                &[&d.id, &d.actor, &d.at_ns],
            )
            .await?;
            let what = format!(
                "attachment {} deleted (sha256 {}, {}, {} bytes)",
                a.id, a.sha256, a.content_type, a.bytes
            );
            tx.execute(
                "INSERT INTO event_history (event_id, at_ns, actor, action, from_status, \
                 to_status, note) VALUES ($1, $2, $3, 'attachment.delete', $4, $4, $5)",
                &[&d.event_id, &d.at_ns, &d.actor, &status.name(), &what],
            )
            .await?;
            tx.execute(
                "INSERT INTO audit (at_ns, actor, department, action, event_id, reason) \
                 VALUES ($1, $2, $3, 'attachment.delete', $4, $5)",
                &[&d.at_ns, &d.actor_name, &d.department, &d.event_id, &what],
            )
            .await?;
            let shared = hash_in_use(tx, &a.sha256).await?;
            Ok(Ok((a, shared)))
        })
    }

    /// The event row is locked first (as the transition locks it), then the photos are
    /// checked, the transition applied (its change drawn under the outbox lock, as every
    /// transition's) and the photos linked to its history row, in one transaction.
    fn transition_with_attachments(
        &self,
        t: Transition<'_>,
        attachment_ids: &[i64],
    ) -> Result<Change> {
        self.write(async |tx| {
            if lock_event(tx, t.id).await?.is_none() {
                return Ok(Err(StoreError::NotFound(t.id)));
            }
            for &id in attachment_ids {
                if let Some(why) = unusable(tx, t.id, id).await? {
                    return Ok(Err(StoreError::Attachment(why)));
                }
            }
            let (change, history_id) = refuse_on_err!(self.transition_in(tx, t).await?);
            for &id in attachment_ids {
                tx.execute(
                    "UPDATE attachments SET history_id = $2 WHERE id = $1",
                    &[&id, &history_id],
                )
                .await?;
            }
            Ok(Ok(change))
        })
    }

    fn hash_in_use(&self, sha256: &str) -> Result<bool> {
        Ok(self
            .pg
            .query_opt(
                "SELECT 1 FROM attachments WHERE sha256 = $1 AND deleted_at_ns IS NULL LIMIT 1",
                &[&sha256],
            )?
            .is_some())
    }

    fn history_ids(&self, event_id: i64) -> Result<Vec<i64>> {
        let rows = self.pg.query(
            "SELECT id FROM event_history WHERE event_id = $1 ORDER BY id",
            &[&event_id],
        )?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<DbResult<_>>()?)
    }
}
