//! Announced edge outages: `POST|GET /edges/{id}/outages`, `DELETE /edges/{id}/outages/{oid}`.
//!
//! A technician announces the window in which an edge will be silent (the box is replaced,
//! roadworks cut its line); the evaluation report takes it off the data completeness of every
//! sensor reporting through the edge. Who may: an admin, or a department that maintains a
//! component on the edge (announcing and deleting need its write token). Anyone else gets the
//! same 404 as for an unknown edge, audited, so the API does not tell which edges exist.
//! Announcements and deletions are audited.

use super::{actor, blocking, parse_id, ApiError, ApiState};
use crate::model::{now_ns, parse_ts_ns, rfc3339, Actor, Scope};
use crate::store::{AuditEntry, EdgeOutage, NewOutage};
use crate::Events;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Longest outage one announcement may cover.
pub const OUTAGE_DAYS_MAX: i64 = 31;
/// Most live outages one edge keeps.
const OUTAGES_PER_EDGE_MAX: u32 = 1000;
/// Longest `reason`.
const REASON_BYTES_MAX: usize = 500;
/// Longest edge id looked at.
const EDGE_ID_BYTES_MAX: usize = 64;
const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

/// `POST /edges/{id}/outages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOutageBody {
    /// RFC 3339 or Unix ms: when the edge goes silent.
    pub from: String,
    /// RFC 3339 or Unix ms, after `from`, at most 31 days later: when it is back.
    pub until: String,
    /// Why (at most 500 bytes), e.g. "gateway replaced".
    #[serde(default)]
    pub reason: Option<String>,
}

/// An announced outage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutageJson {
    pub id: i64,
    pub edge_id: String,
    pub from: String,
    pub until: String,
    pub reason: String,
    pub announced_by: String,
    pub announced_at: String,
    /// Set on the answer to a deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
}

impl From<&EdgeOutage> for OutageJson {
    fn from(o: &EdgeOutage) -> OutageJson {
        OutageJson {
            id: o.id,
            edge_id: o.edge_id.clone(),
            from: rfc3339(o.from_ns),
            until: rfc3339(o.until_ns),
            reason: o.reason.clone(),
            announced_by: o.announced_by.clone(),
            announced_at: rfc3339(o.announced_at_ns),
            deleted_by: o.deleted_by.clone(),
        }
    }
}

/// The departments that maintain a component with a sensor on `edge`; None if no registered
/// sensor reports through it (an unknown edge, for this API).
pub fn edge_maintainers(events: &Events, edge: &str) -> Option<Vec<String>> {
    let now = now_ns();
    let mut found = false;
    let mut departments: Vec<String> = Vec::new();
    for s in events.directory().sensor_coverage(now, now, now) {
        if s.edge != edge {
            continue;
        }
        found = true;
        let d = s.component.maintainer_department;
        if !d.is_empty() && !departments.contains(&d) {
            departments.push(d);
        }
    }
    found.then_some(departments)
}

fn edge_not_found(edge: &str) -> ApiError {
    ApiError::not_found(format!("edge {edge:?} not found"))
}

/// Checks that `actor` may see (and, for `write`, change) the outages of `edge`.
fn allowed(
    events: &Events,
    actor: &Actor,
    edge: &str,
    action: &str,
    write: bool,
) -> Result<(), ApiError> {
    let maintainers = edge_maintainers(events, edge);
    if actor.scope == Scope::Admin {
        return match maintainers {
            Some(_) => Ok(()),
            None => Err(ApiError::with_field(
                StatusCode::BAD_REQUEST,
                "unknown_edge",
                "id",
                format!("path `id`: {edge:?} is not an edge any registered sensor reports through"),
            )),
        };
    }
    let maintains = match (&actor.department, &maintainers) {
        (Some(d), Some(m)) => m.contains(d),
        _ => false,
    };
    if !maintains {
        events.audit_denied(
            actor,
            action,
            None,
            &format!("edge {edge}: not its maintainer"),
        );
        return Err(edge_not_found(edge));
    }
    if write && actor.scope < Scope::Write {
        events.audit_denied(
            actor,
            action,
            None,
            &format!("edge {edge}: read-only token"),
        );
        return Err(ApiError::forbidden(
            "a read-only token cannot announce or delete an edge's outages",
        ));
    }
    Ok(())
}

fn audit(events: &Events, actor: &Actor, action: &str, reason: String) {
    let entry = AuditEntry {
        at_ns: now_ns(),
        actor: actor.name.clone(),
        department: actor.department.clone(),
        action: action.to_string(),
        event_id: None,
        reason,
    };
    if let Err(e) = events.store().audit(&entry) {
        tracing::error!(error = %e, "audit write failed");
    }
}

fn edge_path(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > EDGE_ID_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "path `id`: an edge id of 1 to {EDGE_ID_BYTES_MAX} bytes"
        )));
    }
    Ok(id.to_string())
}

/// The body's window and reason, checked.
fn window(body: &[u8]) -> Result<(i64, i64, String), ApiError> {
    let body: NewOutageBody =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let ts = |field: &'static str, v: &str| {
        parse_ts_ns(v).map_err(|m| {
            ApiError::with_field(
                StatusCode::BAD_REQUEST,
                "bad_request",
                field,
                format!("field `{field}`: {m}"),
            )
        })
    };
    let (from, until) = (ts("from", &body.from)?, ts("until", &body.until)?);
    let bad_until = |m: String| {
        ApiError::with_field(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "until",
            format!("field `until`: {m}"),
        )
    };
    if until <= from {
        return Err(bad_until("must be after `from`".into()));
    }
    if until - from > OUTAGE_DAYS_MAX * DAY_NS {
        return Err(bad_until(format!(
            "the outage is longer than {OUTAGE_DAYS_MAX} days; announce it in parts"
        )));
    }
    let reason = body.reason.unwrap_or_default();
    if reason.len() > REASON_BYTES_MAX || reason.chars().any(char::is_control) {
        return Err(ApiError::with_field(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "reason",
            format!("field `reason`: at most {REASON_BYTES_MAX} bytes, without control characters"),
        ));
    }
    Ok((from, until, reason))
}

/// Runs `f` off the async workers once the token may do `action` on edge `id`'s outages.
async fn on_edge<R: IntoResponse>(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    (action, write): (&'static str, bool),
    f: impl FnOnce(&Events, &Actor, &str) -> Result<R, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let actor = actor(state, headers)?;
    let edge = edge_path(id)?;
    let events = state.events.clone();
    blocking(move || {
        allowed(&events, &actor, &edge, action, write)?;
        f(&events, &actor, &edge).map(IntoResponse::into_response)
    })
    .await
}

pub(super) async fn announce(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let action = ("outage.announce", true);
    on_edge(&state, &headers, &id, action, move |events, actor, edge| {
        let (from_ns, until_ns, reason) = window(&body)?;
        let o = events.store().add_outage(&NewOutage {
            edge_id: edge,
            from_ns,
            until_ns,
            reason: &reason,
            announced_by: &actor.label(),
            at_ns: now_ns(),
            per_edge_max: OUTAGES_PER_EDGE_MAX,
        })?;
        tracing::info!(edge_id = %edge, outage_id = o.id, actor = %actor.label(), "edge outage announced");
        let what = format!("edge {edge}: outage {} from {} until {}", o.id, rfc3339(from_ns), rfc3339(until_ns));
        audit(events, actor, "outage.announce", what);
        Ok((StatusCode::CREATED, Json(OutageJson::from(&o))))
    })
    .await
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    on_edge(
        &state,
        &headers,
        &id,
        ("outage.list", false),
        |events, _, edge| {
            let items: Vec<OutageJson> = events
                .store()
                .outages(edge)?
                .iter()
                .map(OutageJson::from)
                .collect();
            Ok(Json(super::bodies::Page { items, next: None }))
        },
    )
    .await
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, oid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let oid = parse_id(&oid, "oid")?;
    on_edge(
        &state,
        &headers,
        &id,
        ("outage.delete", true),
        move |events, actor, edge| {
            let o = events
                .store()
                .delete_outage(edge, oid, &actor.label(), now_ns())?
                .ok_or_else(|| {
                    ApiError::not_found(format!("outage {oid} of edge {edge:?} not found"))
                })?;
            let what = format!(
                "edge {edge}: outage {oid} from {} until {}",
                rfc3339(o.from_ns),
                rfc3339(o.until_ns)
            );
            audit(events, actor, "outage.delete", what);
            Ok(Json(OutageJson::from(&o)))
        },
    )
    .await
}
