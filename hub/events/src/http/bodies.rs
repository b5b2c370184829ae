//! The JSON bodies of the events API, as types: the handlers read and write exactly these, and
//! the hub's OpenAPI document derives its schemas from them (`hub/src/api/events_doc.rs` only
//! names the routes), so the document cannot drift from what is served.

use crate::model::{rfc3339, Event, EventJson, HistoryEntry};
use crate::store::{Delivery, DeliveryAttempt, Subscription};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of a list, newest first; `next` is the cursor of the following page (null on the
/// last), passed back as `?cursor=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// `GET events/{id}`: the event and its history of transitions, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail<'a> {
    #[serde(flatten)]
    pub event: EventJson<'a>,
    #[schema(value_type = Vec<HistoryEntry>)]
    pub history: Vec<HistoryEntry>,
}

impl<'a> EventDetail<'a> {
    pub fn new(event: &'a Event, history: Vec<HistoryEntry>) -> Self {
        EventDetail {
            event: EventJson::from(event),
            history,
        }
    }
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
