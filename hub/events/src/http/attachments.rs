//! Photos on events: `POST events/{id}/attachments` (multipart, one part `file`),
//! `GET events/{id}/attachments`, `GET`/`DELETE events/{id}/attachments/{att}`.
//!
//! Every route first checks that the token sees the event (the same 404 as for a missing
//! event otherwise, audited); upload and delete need a write token. The body is read part by
//! part and refused with 413 as soon as the photo passes `bytes_max`; the type is the
//! content's (415 names what was sent). Served photos carry their checked type,
//! `X-Content-Type-Options: nosniff`, a Content-Disposition that never echoes the uploaded
//! name, and a sandboxing CSP.

use super::bodies::{AttachmentJson, Page};
use super::events::visible_event;
use super::{actor, blocking, parse_id, ApiError, ApiState};
use crate::attachments::{clean_filename, AttachError, Outcome};
use crate::model::{now_ns, Actor, Event, Scope};
use crate::store::StoreError;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Room for the multipart framing around the photo, on top of `bytes_max`.
pub(super) const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

impl From<AttachError> for ApiError {
    fn from(e: AttachError) -> ApiError {
        match e {
            AttachError::UnsupportedType { .. } => ApiError::with_field(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_type",
                "file",
                e.to_string(),
            ),
            AttachError::Malformed(_) => ApiError::with_field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "malformed_image",
                "file",
                e.to_string(),
            ),
            AttachError::Store(s) => s.into(),
            AttachError::Disabled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "attachments_disabled",
                e.to_string(),
            ),
            AttachError::Blob(_) => {
                tracing::error!(error = %e, "attachment storage");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "attachment storage error",
                )
            }
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::with_field(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "file",
        format!(
            "field `file`: the photo is larger than {max} bytes, the most accepted \
             ([events.attachments] bytes_max)"
        ),
    )
}

fn multipart_error(state: &ApiState, e: MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state
            .events
            .attachment_metrics()
            .count(Outcome::RefusedSize);
        return too_large(max);
    }
    ApiError::bad_request(format!("body: {}", e.body_text()))
}

/// The event if `actor` sees it and, for `write`, may act on it; refusals are audited.
async fn event_for(
    state: &ApiState,
    actor: &Actor,
    id: i64,
    action: &'static str,
    write: bool,
) -> Result<Event, ApiError> {
    let events = state.events.clone();
    let actor = actor.clone();
    blocking(move || {
        let event = visible_event(&events, &actor, id, action)?;
        if write && actor.scope < Scope::Write {
            events.audit_denied(&actor, action, Some(id), "read-only token");
            return Err(ApiError::forbidden(
                "a read-only token cannot change an event's attachments",
            ));
        }
        Ok(event)
    })
    .await
}

pub(super) async fn upload(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    let event = event_for(&state, &actor, id, "attachment.upload", true).await?;
    let max = state.events.attachment_settings().bytes_max;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("body: {e}; send multipart/form-data with the photo in a part named `file`"),
        )
    })?;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    while let Some(mut part) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&state, e, max))?
    {
        let name = part.name().unwrap_or("").to_string();
        if name != "file" {
            return Err(ApiError::bad_request(format!(
                "field `{name}`: unknown part; send the photo in a part named `file`"
            )));
        }
        if file.is_some() {
            return Err(ApiError::bad_request("field `file`: one photo per upload"));
        }
        let filename = part.file_name().and_then(clean_filename);
        let mut bytes = Vec::new();
        while let Some(chunk) = part
            .chunk()
            .await
            .map_err(|e| multipart_error(&state, e, max))?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                state
                    .events
                    .attachment_metrics()
                    .count(Outcome::RefusedSize);
                tracing::warn!(event_id = id, actor = %actor.label(), max, "attachment refused: too large");
                return Err(too_large(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some((filename, bytes));
    }
    let (filename, bytes) = file.ok_or_else(|| {
        ApiError::bad_request("field `file`: missing; send the photo in a part named `file`")
    })?;
    let events = state.events.clone();
    blocking(move || {
        let a = events
            .add_attachment(&event, &actor, filename.as_deref(), &bytes, now_ns())
            .inspect_err(|e| {
                tracing::warn!(event_id = id, actor = %actor.label(), error = %e, "attachment refused")
            })?;
        Ok((StatusCode::CREATED, Json(AttachmentJson::from(&a))).into_response())
    })
    .await
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    event_for(&state, &actor, id, "attachment.list", false).await?;
    let events = state.events.clone();
    blocking(move || {
        let items = events
            .store()
            .attachments(id)?
            .iter()
            .filter(|a| a.deleted_at_ns.is_none())
            .map(AttachmentJson::from)
            .collect();
        Ok(Json(Page { items, next: None }).into_response())
    })
    .await
}

/// What every request on one attachment (`events/{id}/attachments/{att}`) checks first: the
/// token's actor, both ids, and that the actor may `action` the event (see [`event_for`]).
async fn one_attachment(
    state: &ApiState,
    headers: &HeaderMap,
    (id, att): (String, String),
    action: &'static str,
    write: bool,
) -> Result<(Actor, i64, i64), ApiError> {
    let actor = actor(state, headers)?;
    let id = parse_id(&id, "id")?;
    let att = parse_id(&att, "att")?;
    event_for(state, &actor, id, action, write).await?;
    Ok((actor, id, att))
}

fn attachment_gone(id: i64, att: i64) -> ApiError {
    ApiError::not_found(format!("attachment {att} of event {id} not found"))
}

pub(super) async fn get_one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, id, att) = one_attachment(&state, &headers, ids, "attachment.read", false).await?;
    let events = state.events.clone();
    blocking(move || {
        let a = events
            .store()
            .attachment(id, att)?
            .filter(|a| a.deleted_at_ns.is_none())
            .ok_or_else(|| attachment_gone(id, att))?;
        let (kind, bytes) = events.attachment_bytes(&a)?;
        let value = |s: String| HeaderValue::from_str(&s).expect("ASCII header value");
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind.mime())),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_DISPOSITION,
                value(format!(
                    "inline; filename=\"event-{id}-attachment-{att}.{}\"",
                    kind.extension()
                )),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            ),
            (header::ETAG, value(format!("\"{}\"", a.sha256))),
        ];
        Ok((headers, bytes).into_response())
    })
    .await
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (actor, id, att) = one_attachment(&state, &headers, ids, "attachment.delete", true).await?;
    let events = state.events.clone();
    blocking(move || {
        let a = events
            .delete_attachment(id, att, &actor, now_ns())
            .map_err(|e| match e {
                AttachError::Store(StoreError::AttachmentNotFound(_)) => attachment_gone(id, att),
                e => e.into(),
            })?;
        Ok(Json(AttachmentJson::from(&a)).into_response())
    })
    .await
}
