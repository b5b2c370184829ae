//! The engine's attachment operations: check a photo, strip its location, store its bytes by
//! hash and its metadata in the store; serve, delete; and transitions that carry photos, with
//! the evidence rules applied to every transition.
//!
//! Bytes go to the blob store before the metadata row is written (a crash in between leaves
//! an unreferenced blob, never a row without bytes); a deletion marks the row first and then
//! removes the bytes unless another live photo has the same hash. One lock orders these two,
//! so an upload of the same photo cannot lose its bytes to a concurrent deletion.

use super::location;
use super::metrics::{AttachmentMetrics, Outcome};
use super::sniff::{self, ImageType};
use crate::model::{Actor, Change, Event};
use crate::store::{
    Attachment, Deletion, NewAttachment, StoreError, Transition, TransitionRequest,
};
use crate::Events;
use sha2::{Digest, Sha256};

/// Why an upload, a read or a deletion of an attachment failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "field `file`: the file is {detected}; only image/jpeg, image/png and image/webp are \
         accepted (checked by content, not by name)"
    )]
    UnsupportedType { detected: &'static str },
    #[error("field `file`: {0}")]
    Malformed(String),
    #[error("attachment storage: {0}")]
    Blob(std::io::Error),
    #[error("attachments are not enabled on this engine (no blob store)")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The file name as shown back: no path, no control characters or quotes, at most 255 bytes.
pub fn clean_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '<' | '>'))
        .collect();
    while out.len() > 255 {
        out.pop();
    }
    let out = out.trim().to_string();
    (!out.is_empty()).then_some(out)
}

impl Events {
    /// The `[events.attachments]` settings in force.
    pub fn attachment_settings(&self) -> &super::Attachments {
        &self.inner.attachments
    }

    /// The counters behind `wangge_attachments_total{outcome}` (render them into `/metrics`).
    pub fn attachment_metrics(&self) -> &AttachmentMetrics {
        &self.inner.attachment_metrics
    }

    fn blobs(&self) -> Result<&dyn super::BlobStore, AttachError> {
        self.inner.blobs.as_deref().ok_or(AttachError::Disabled)
    }

    fn blob_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .blob_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `bytes` (type by content, well-formed), removes its location unless the
    /// operator keeps it, and records it on `event` for `actor`. The size limit is the
    /// caller's (it stops reading a body past `bytes_max`).
    pub fn add_attachment(
        &self,
        event: &Event,
        actor: &Actor,
        filename: Option<&str>,
        bytes: &[u8],
        now_ns: i64,
    ) -> Result<Attachment, AttachError> {
        let result = self.store_attachment(event, actor, filename, bytes, now_ns);
        let m = self.attachment_metrics();
        match &result {
            Ok(a) => {
                m.count(Outcome::Stored);
                if a.location_removed {
                    m.count(Outcome::LocationRemoved);
                }
            }
            Err(AttachError::UnsupportedType { .. }) => m.count(Outcome::RefusedType),
            Err(AttachError::Malformed(_)) => m.count(Outcome::RefusedMalformed),
            Err(AttachError::Store(StoreError::Limit(_))) => m.count(Outcome::RefusedLimit),
            Err(_) => {}
        }
        result
    }

    fn store_attachment(
        &self,
        event: &Event,
        actor: &Actor,
        filename: Option<&str>,
        bytes: &[u8],
        now_ns: i64,
    ) -> Result<Attachment, AttachError> {
        let settings = self.attachment_settings();
        let kind =
            sniff::detect(bytes).map_err(|detected| AttachError::UnsupportedType { detected })?;
        let stripped = location::strip(kind, bytes).map_err(AttachError::Malformed)?;
        let (bytes, location_removed) = if settings.keep_location {
            (bytes.to_vec(), false)
        } else {
            (stripped.bytes, stripped.removed)
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let blobs = self.blobs()?;
        let _order = self.blob_lock();
        blobs.put(&sha256, &bytes).map_err(AttachError::Blob)?;
        let label = actor.label();
        let row = self.store().add_attachment(&NewAttachment {
            event_id: event.id,
            sha256: &sha256,
            content_type: kind.mime(),
            bytes: bytes.len() as u64,
            filename,
            uploaded_by: &label,
            at_ns: now_ns,
            location_removed,
            per_event_max: settings.per_event_max,
        });
        if row.is_err() && !self.store().hash_in_use(&sha256).unwrap_or(true) {
            let _ = blobs.delete(&sha256);
        }
        let row = row?;
        tracing::info!(event_id = event.id, attachment_id = row.id, sha256 = %sha256,
            content_type = kind.mime(), bytes = row.bytes, location_removed, actor = %label,
            "attachment stored");
        Ok(row)
    }

    /// The bytes of a live attachment and their checked type.
    pub fn attachment_bytes(&self, a: &Attachment) -> Result<(ImageType, Vec<u8>), AttachError> {
        let kind = ImageType::from_mime(&a.content_type).ok_or_else(|| {
            StoreError::Corrupt(format!("attachment {} type {:?}", a.id, a.content_type))
        })?;
        let bytes = self.blobs()?.get(&a.sha256).map_err(AttachError::Blob)?;
        let bytes = bytes.ok_or_else(|| {
            AttachError::Blob(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "the bytes of attachment {} (sha256 {}) are missing",
                    a.id, a.sha256
                ),
            ))
        })?;
        Ok((kind, bytes))
    }

    /// Deletes attachment `id` of event `event_id` on behalf of `actor`: audited and in the
    /// event's history; its bytes go unless another live photo shares them.
    pub fn delete_attachment(
        &self,
        event_id: i64,
        id: i64,
        actor: &Actor,
        now_ns: i64,
    ) -> Result<Attachment, AttachError> {
        let blobs = self.blobs()?;
        let _order = self.blob_lock();
        let label = actor.label();
        let (a, shared) = self.store().delete_attachment(Deletion {
            event_id,
            id,
            actor: &label,
            actor_name: &actor.name,
            department: actor.department.as_deref(),
            at_ns: now_ns,
        })?;
        if !shared {
            if let Err(e) = blobs.delete(&a.sha256) {
                tracing::error!(error = %e, sha256 = %a.sha256, "cannot remove a deleted attachment's bytes");
            }
        }
        self.attachment_metrics().count(Outcome::Deleted);
        tracing::info!(event_id, attachment_id = id, sha256 = %a.sha256, actor = %label, "attachment deleted");
        self.store()
            .attachment(event_id, id)?
            .ok_or(AttachError::Store(StoreError::AttachmentNotFound(id)))
    }

    /// [`Events::transition`] carrying photos: the evidence rules are checked, then the
    /// transition and the photos' references are one transaction.
    pub fn transition_with(
        &self,
        id: i64,
        actor: &Actor,
        req: &TransitionRequest,
        attachment_ids: &[i64],
        now_ns: i64,
    ) -> Result<Change, StoreError> {
        if attachment_ids.is_empty() {
            let event = self.store().get(id)?.ok_or(StoreError::NotFound(id))?;
            if let Some(rule) = self
                .attachment_settings()
                .rule_for(&event.event_type, req.action)
            {
                return Err(StoreError::EvidenceRequired {
                    rule: rule.name.clone(),
                    action: req.action.name(),
                    event_type: event.event_type,
                });
            }
        }
        let ch = self.store().transition_with_attachments(
            Transition {
                id,
                actor: &actor.label(),
                req,
                now_ns,
            },
            attachment_ids,
        )?;
        self.notify(ch.cursor);
        Ok(ch)
    }
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn file_names_lose_paths_quotes_and_control_characters() {
        assert_eq!(
            clean_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_filename("C:\\photos\\井盖.jpg").as_deref(),
            Some("井盖.jpg")
        );
        assert_eq!(clean_filename("a\"b\r\n.jpg").as_deref(), Some("ab.jpg"));
        assert_eq!(clean_filename("dir/"), None);
        assert!(clean_filename(&"x".repeat(400)).unwrap().len() <= 255);
    }
}
