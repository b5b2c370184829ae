//! OpenAPI entries for the events routes. The routes themselves live in the `wangge-events`
//! crate (`hub/events/src/http.rs`, mounted by `serve` under `/api/v1` when `[events] enabled`,
//! the default); their routes are listed here, in the hub's one OpenAPI document. Every body's
//! schema derives from the type the handler serializes (`wangge_events::model::EventJson`,
//! `wangge_events::http::bodies`). These functions are never routed. Full semantics:
//! `hub/events/README.md` "API notes".
#![allow(dead_code)]

use super::error::ErrorBody;
use utoipa::IntoParams;
use wangge_events::http::bodies::{
    AttachmentJson, AttachmentUpload, DeliveryJson, EventDetail, NewSubscription, Page,
    SubscriptionJson, TransitionBody,
};
use wangge_events::http::outages::{NewOutageBody, OutageJson};
use wangge_events::model::EventJson;

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub status: Option<String>,
    #[param(rename = "type")]
    pub event_type: Option<String>,
    pub component: Option<String>,
    pub department: Option<String>,
    /// RFC 3339 or Unix ms, on `raised_at`.
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// RFC 3339 or Unix ms; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or Unix ms; default now.
    pub to: Option<String>,
}

/// Events visible to the token (sharing rules), newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<EventJson>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub fn list_events() {}

/// One event, with its history of transitions.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = EventDetail), (status = 404, body = ErrorBody)))]
pub fn get_event() {}

/// Moves an event through the closed loop; 409 names the allowed actions.
#[utoipa::path(post, path = "/api/v1/events/{id}/transitions", tag = "events",
    params(("id" = i64, Path)), request_body = TransitionBody, security(("bearer" = [])),
    responses((status = 200, body = EventJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "dispatch to an unregistered department; \
            `evidence_required`: an [[events.attachments.require]] rule wants a photo in `attachments`; \
            `attachment_unusable`: an id in `attachments` is not a live, unreferenced photo of this event")))]
pub fn transition() {}

/// Server-sent events (`event: event`, `data:` Event JSON, `id:` cursor), resumable with
/// `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String)))]
pub fn stream() {}

/// Webhook subscriptions of the token's department (admin: all).
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Page<SubscriptionJson>)))]
pub fn list_subscriptions() {}

/// Creates a webhook subscription; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions",
    request_body = NewSubscription, security(("bearer" = [])),
    responses((status = 201, body = SubscriptionJson), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "url refused by the SSRF guard")))]
pub fn create_subscription() {}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = SubscriptionJson), (status = 404, body = ErrorBody)))]
pub fn get_subscription() {}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub fn delete_subscription() {}

/// Delivery attempts of a subscription.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/deliveries", tag = "subscriptions",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<DeliveryJson>)))]
pub fn list_deliveries() {}

/// A query of the evaluation report's JSON: the range and the page.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// RFC 3339 or Unix ms; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or Unix ms; default now.
    pub to: Option<String>,
    /// Rows of each table from `offset` on: 1 to 10000, default 1000 (`totals` counts them all).
    pub limit: Option<usize>,
    /// The first row of each table the page holds, default 0.
    pub offset: Option<usize>,
    /// Only this table (one of those `ReportCsvQuery.table` lists); default every table.
    pub table: Option<String>,
}

/// Evaluation (综合评价) per department and per component over a period, paged: at most
/// `limit` rows of each table from `offset` on, `totals` with every table's row count (the CSV
/// and XLSX downloads hold every row). A bad `limit`, `offset` or `table` is a 400 naming it.
#[utoipa::path(get, path = "/api/v1/reports/evaluation", tag = "reports", params(ReportQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub fn evaluation() {}

/// A query of the evaluation report's CSV export: the range and the table.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportCsvQuery {
    /// One of the report's tables: components, sensors, completeness_by_type,
    /// completeness_by_grid_cell, completeness_by_department, completeness_by_edge, departments,
    /// grid_cells, repeat_offenders, trend_daily, trend_weekly. Default components.
    pub table: Option<String>,
    /// RFC 3339 or Unix ms; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or Unix ms; default now.
    pub to: Option<String>,
}

/// One table of the evaluation report as CSV (RFC 4180, header row), same visibility as the JSON.
#[utoipa::path(get, path = "/api/v1/reports/evaluation.csv", tag = "reports", params(ReportCsvQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody)))]
pub fn evaluation_csv() {}

/// Every table of the evaluation report as an XLSX workbook, one sheet per table.
#[utoipa::path(get, path = "/api/v1/reports/evaluation.xlsx", tag = "reports", params(RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        body = Vec<u8>), (status = 400, body = ErrorBody)))]
pub fn evaluation_xlsx() {}

/// Uploads a photo (JPEG, PNG or WebP, checked by content; at most `[events.attachments]
/// bytes_max`, default 10 MiB) to an event the token sees, for a later transition to reference
/// in `attachments`. GPS location is removed from its metadata unless `keep_location`.
#[utoipa::path(post, path = "/api/v1/events/{id}/attachments", tag = "events",
    params(("id" = i64, Path)), security(("bearer" = [])),
    request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentJson), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "read-only token"),
        (status = 404, body = ErrorBody, description = "no such event, or not shared with the token's department"),
        (status = 409, body = ErrorBody, description = "the event holds per_event_max photos"),
        (status = 413, body = ErrorBody, description = "larger than bytes_max"),
        (status = 415, body = ErrorBody, description = "not a JPEG/PNG/WebP by content; names the detected type"),
        (status = 422, body = ErrorBody, description = "a JPEG/PNG/WebP that does not hold together")))]
pub fn upload_attachment() {}

/// The event's photos (not deleted), oldest first.
#[utoipa::path(get, path = "/api/v1/events/{id}/attachments", tag = "events",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<AttachmentJson>), (status = 404, body = ErrorBody)))]
pub fn list_attachments() {}

/// One photo's bytes, with its checked Content-Type, `X-Content-Type-Options: nosniff` and
/// `Content-Disposition: inline; filename="event-{id}-attachment-{att}.jpg"`; the original,
/// which the dashboard scales down for thumbnails.
#[utoipa::path(get, path = "/api/v1/events/{id}/attachments/{att}", tag = "events",
    params(("id" = i64, Path), ("att" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>,
        description = "image/jpeg, image/png or image/webp"), (status = 404, body = ErrorBody)))]
pub fn get_attachment() {}

/// Deletes a photo (write token): its bytes go, the deletion is audited (who, when, which
/// hash) and shown in the event's history as `attachment.delete`.
#[utoipa::path(delete, path = "/api/v1/events/{id}/attachments/{att}", tag = "events",
    params(("id" = i64, Path), ("att" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = AttachmentJson), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already deleted")))]
pub fn delete_attachment() {}

/// Audit log (admin): refused and accepted actions.
#[utoipa::path(get, path = "/api/v1/audit", tag = "reports", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub fn audit() {}

/// Announces an outage of an edge: a planned window in which it will be silent (gateway
/// replaced, roadworks). The evaluation report takes it off the data completeness of every
/// sensor reporting through the edge. Admin, or a department maintaining a component on the
/// edge with a write token; anyone else gets 404. Audited.
#[utoipa::path(post, path = "/api/v1/edges/{id}/outages", tag = "edges",
    params(("id" = String, Path)), security(("bearer" = [])),
    request_body = NewOutageBody,
    responses((status = 201, body = OutageJson),
        (status = 400, body = ErrorBody, description = "`until` not after `from`, longer than 31 days, a bad time, or (admin) an edge no registered sensor reports through; names the field"),
        (status = 403, body = ErrorBody, description = "the maintainer's read-only token"),
        (status = 404, body = ErrorBody, description = "not an edge the token's department maintains"),
        (status = 409, body = ErrorBody, description = "the edge holds 1000 announced outages")))]
pub fn announce_outage() {}

/// The edge's announced outages (not deleted), earliest first.
#[utoipa::path(get, path = "/api/v1/edges/{id}/outages", tag = "edges",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<OutageJson>), (status = 404, body = ErrorBody)))]
pub fn list_outages() {}

/// Deletes an announced outage (the record keeps who and when; audited).
#[utoipa::path(delete, path = "/api/v1/edges/{id}/outages/{oid}", tag = "edges",
    params(("id" = String, Path), ("oid" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = OutageJson), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub fn delete_outage() {}
