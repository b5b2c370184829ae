//! `GET /audit`: the audit log, for admin tokens.

use super::{actor, ApiError, ApiState, PAGE_MAX};
use crate::model::{rfc3339, Scope};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value as Json_};

pub(super) async fn audit_log(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    if actor.scope != Scope::Admin {
        state
            .events
            .audit_denied(&actor, "audit", None, "audit log is admin only");
        return Err(ApiError::forbidden("the audit log is for admin tokens"));
    }
    let items: Vec<Json_> = state
        .events
        .store()
        .audit_log(PAGE_MAX)?
        .into_iter()
        .map(|a| {
            json!({"at": rfc3339(a.at_ns), "actor": a.actor, "department": a.department,
                   "action": a.action, "event_id": a.event_id, "reason": a.reason})
        })
        .collect();
    Ok(Json(json!({ "items": items, "next": null })))
}
