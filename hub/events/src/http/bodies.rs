//! The JSON bodies of the events API, as types: the handlers read and write exactly these, and
//! the hub's OpenAPI document derives its schemas from them (`hub/src/api/events_doc.rs` only
//! names the routes), so the document cannot drift from what is served.

use crate::model::{rfc3339, Event, EventJson, HistoryEntry};
use crate::store::{Attachment, Delivery, DeliveryAttempt, Subscription};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of a list, newest first; `next` is the cursor of the following page (null on the
/// last), passed back as `?cursor=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// `GET events/{id}`: the event, its history of transitions (oldest first) and its photos.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail<'a> {
    #[serde(flatten)]
    pub event: EventJson<'a>,
    pub history: Vec<HistoryItem>,
    /// The event's photos that are not deleted, oldest first.
    pub attachments: Vec<AttachmentJson>,
}

/// One row of an event's history (see `HistoryEntry`) and the photos its transition carried.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    pub at: String,
    /// `system` for rule-driven changes, else the token's department/user.
    pub actor: String,
    /// A transition (`resolve`, …), a rule's change (`raise`, `clear`, `overdue`, …), or
    /// `attachment.delete` (the note names the photo and its hash).
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub department: Option<String>,
    pub note: Option<String>,
    /// Ids of the attachments this transition referenced (deleted ones included).
    pub attachments: Vec<i64>,
}

impl<'a> EventDetail<'a> {
    /// `history_ids` are the ids of the `history` rows, in order; `attachments` every photo of
    /// the event, deleted ones included (those are named in the history, not listed).
    pub fn new(
        event: &'a Event,
        history: Vec<HistoryEntry>,
        history_ids: &[i64],
        attachments: &[Attachment],
    ) -> Self {
        let history = history
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let row = history_ids.get(i).copied();
                HistoryItem {
                    at: h.at,
                    actor: h.actor,
                    action: h.action,
                    from_status: h.from_status,
                    to_status: h.to_status,
                    department: h.department,
                    note: h.note,
                    attachments: attachments
                        .iter()
                        .filter(|a| row.is_some() && a.history_id == row)
                        .map(|a| a.id)
                        .collect(),
                }
            })
            .collect();
        EventDetail {
            event: EventJson::from(event),
            history,
            attachments: attachments
                .iter()
                .filter(|a| a.deleted_at_ns.is_none())
                .map(AttachmentJson::from)
                .collect(),
        }
    }
}

/// A photo attached to an event. Its bytes are served at `url` to tokens that see the event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentJson {
    pub id: i64,
    pub event_id: i64,
    /// SHA-256 of the bytes served (after the location was removed), hex.
    pub sha256: String,
    /// image/jpeg | image/png | image/webp, from the file's content.
    pub content_type: String,
    pub bytes: i64,
    /// As uploaded, cleaned (never used as a path).
    pub filename: Option<String>,
    pub uploaded_by: String,
    /// RFC 3339.
    pub uploaded_at: String,
    /// A GPS location was found in the photo's metadata and removed before it was stored.
    pub location_removed: bool,
    /// Whether a transition referenced it (see the history's `attachments`).
    pub referenced: bool,
    pub deleted_by: Option<String>,
    /// RFC 3339; set once deleted (the bytes are gone then).
    pub deleted_at: Option<String>,
    /// `/api/v1/events/{event_id}/attachments/{id}`.
    pub url: String,
}

impl From<&Attachment> for AttachmentJson {
    fn from(a: &Attachment) -> Self {
        AttachmentJson {
            id: a.id,
            event_id: a.event_id,
            sha256: a.sha256.clone(),
            content_type: a.content_type.clone(),
            bytes: a.bytes,
            filename: a.filename.clone(),
            uploaded_by: a.uploaded_by.clone(),
            uploaded_at: rfc3339(a.uploaded_at_ns),
            location_removed: a.location_removed,
            referenced: a.history_id.is_some(),
            deleted_by: a.deleted_by.clone(),
            deleted_at: a.deleted_at_ns.map(rfc3339),
            url: format!("/api/v1/events/{}/attachments/{}", a.event_id, a.id),
        }
    }
}

/// `POST events/{id}/attachments`: multipart/form-data with one part named `file`, the photo
/// (JPEG, PNG or WebP by content; at most `[events.attachments] bytes_max`).
#[derive(Debug, ToSchema)]
pub struct AttachmentUpload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Body of `POST events/{id}/transitions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// acknowledge | dispatch | start | resolve | close | reopen
    pub action: String,
    /// Required by `dispatch`: a registered department.
    pub department: Option<String>,
    pub note: Option<String>,
    /// Ids of photos uploaded to this event (`POST events/{id}/attachments`) that this
    /// transition carries, at most 32; required (≥ 1) where an `[[events.attachments.require]]`
    /// rule names the action and the event's type.
    pub attachments: Option<Vec<i64>>,
}

/// Body of `POST subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// An http(s) URL of at most 2048 bytes, checked by the SSRF guard.
    pub url: String,
    /// HMAC-SHA256 key of `X-Wangge-Signature`, 16 to 256 bytes; generated (and shown once)
    /// when absent.
    pub secret: Option<String>,
    /// Patterns such as `fire.*`, at most 64; absent or empty = all.
    pub event_types: Option<Vec<String>>,
    /// Only an admin token may name a department other than its own.
    pub department: Option<String>,
}

/// A webhook subscription. `secret` appears only in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionJson<'a> {
    pub id: i64,
    pub url: &'a str,
    pub department: Option<&'a str>,
    pub event_types: &'a [String],
    /// RFC 3339.
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
}

impl<'a> SubscriptionJson<'a> {
    /// The subscription as listed and read: without its secret.
    pub fn listed(s: &'a Subscription) -> Self {
        SubscriptionJson {
            id: s.id,
            url: &s.url,
            department: s.department.as_deref(),
            event_types: &s.event_types,
            created_at: rfc3339(s.created_at_ns),
            secret: None,
        }
    }

    /// The subscription as created: the one time its secret is shown.
    pub fn created(s: &'a Subscription) -> Self {
        SubscriptionJson {
            secret: Some(&s.secret),
            ..Self::listed(s)
        }
    }
}

/// One delivery of one event version to a subscription, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryJson {
    pub id: i64,
    pub event_id: i64,
    pub version: i64,
    /// The change cursor (the SSE `id:`) of the event version delivered.
    pub cursor: i64,
    /// pending | delivered | failed
    pub status: String,
    pub attempts: i64,
    /// RFC 3339.
    pub next_attempt: String,
    pub last_status: Option<i64>,
    /// The class of the last error (never the receiver's raw answer).
    pub last_error: Option<&'static str>,
    pub delivered_at: Option<String>,
    pub history: Vec<AttemptJson>,
}

/// One webhook POST of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
pub struct AttemptJson {
    /// The `X-Wangge-Delivery` header sent.
    pub delivery: String,
    /// RFC 3339.
    pub at: String,
    pub http_status: Option<i64>,
    pub error: Option<&'static str>,
}

impl DeliveryJson {
    pub fn new(d: Delivery, attempts: Vec<DeliveryAttempt>) -> Self {
        let shown = crate::delivery::error_class::shown;
        DeliveryJson {
            id: d.id,
            event_id: d.event_id,
            version: d.version,
            cursor: d.cursor,
            status: d.status,
            attempts: d.attempts,
            next_attempt: rfc3339(d.next_attempt_ns),
            last_status: d.last_status,
            last_error: d.last_error.as_deref().map(shown),
            delivered_at: d.delivered_at_ns.map(rfc3339),
            history: attempts
                .into_iter()
                .map(|a| AttemptJson {
                    at: rfc3339(a.at_ns),
                    http_status: a.http_status,
                    error: a.error.as_deref().map(shown),
                    delivery: a.delivery_uid,
                })
                .collect(),
        }
    }
}
