//! `GET /events` (pages cut after visibility), `GET /events/{id}`, `POST /events/{id}/transitions`.

use super::bodies::{EventDetail, Page, TransitionBody};
use super::{actor, blocking, param_ts, parse_id, ApiError, ApiState, PAGE_DEFAULT, PAGE_MAX};
use crate::lifecycle::Action;
use crate::model::{now_ns, Actor, Scope, Status};
use crate::model::{Event, EventJson};
use crate::store::{ListQuery, TransitionRequest};
use crate::Events;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

pub(super) async fn list_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    for k in q.keys() {
        if ![
            "status",
            "type",
            "component",
            "department",
            "since",
            "cursor",
            "limit",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "query `{k}`: unknown parameter"
            )));
        }
    }
    let status = q
        .get("status")
        .map(|s| {
            Status::from_name(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query `status`: {s:?} is not one of open, acknowledged, dispatched, in_progress, resolved, closed"
                ))
            })
        })
        .transpose()?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("query `limit`: 1..={PAGE_MAX}")))?,
        None => PAGE_DEFAULT,
    };
    let query = ListQuery {
        status,
        event_type: q.get("type").cloned(),
        component: q.get("component").cloned(),
        department: q.get("department").cloned(),
        since_ns: param_ts(&q, "since")?,
        before_id: q.get("cursor").map(|c| parse_id(c, "cursor")).transpose()?,
        limit,
    };
    let events = state.events.clone();
    let (items, next) = blocking(move || visible_page(&events, &actor, query, limit)).await?;
    let items = items.iter().map(EventJson::from).collect();
    Ok(Json(Page { items, next }).into_response())
}

/// Most photos one transition may carry.
const TRANSITION_ATTACHMENTS_MAX: usize = 32;

/// Rows read from the store per round while filling a page with visible events.
const SCAN_PAGE: usize = 500;

/// One page of the events `actor` sees, newest first, and the cursor of the next page.
///
/// Visibility is applied before the page is cut: the store is read in rounds until `limit`
/// visible events are found plus one more (which proves a next page exists) or the store has
/// no more rows. So `next` is non-null only when another visible event exists, a page is never
/// empty with a `next`, and the cursor is the id of the last event returned — neither says
/// anything about events the department cannot see. The cost is a scan of the hidden rows in
/// between (rows are read by primary key, component lookups are cached per request).
fn visible_page(
    events: &Events,
    actor: &Actor,
    query: ListQuery,
    limit: usize,
) -> Result<(Vec<Event>, Option<String>), ApiError> {
    let mut ctx_cache: HashMap<String, Option<crate::model::ComponentCtx>> = HashMap::new();
    let mut sees = |e: &crate::model::Event| {
        if actor.scope == Scope::Admin {
            return true;
        }
        let ctx = ctx_cache
            .entry(e.component_id.clone())
            .or_insert_with(|| events.directory().component(&e.component_id));
        events.sharing().actor_sees(actor, e, ctx.as_ref())
    };
    let mut items = Vec::new();
    let mut last_id = None;
    let mut before = query.before_id;
    let mut more = false;
    'scan: loop {
        let round = ListQuery {
            before_id: before,
            limit: SCAN_PAGE,
            ..query.clone()
        };
        let rows = events.store().list(&round)?;
        let full = rows.len() == SCAN_PAGE;
        let last_read = rows.last().map(|e| e.id);
        for e in rows {
            if sees(&e) {
                if items.len() == limit {
                    more = true;
                    break 'scan;
                }
                last_id = Some(e.id);
                items.push(e);
            }
        }
        match last_read {
            Some(last) if full => before = Some(last),
            _ => break,
        }
    }
    let next = if more {
        last_id.map(|id| id.to_string())
    } else {
        None
    };
    Ok((items, next))
}

/// The answer for an event the caller may not see: the same 404 as for one that does not exist,
/// so probing ids proves nothing (a 403 would say "it exists, elsewhere"). Still audited.
fn hidden(id: i64) -> ApiError {
    ApiError::not_found(format!("event {id} not found"))
}

/// Event `id` if `actor` may see it; otherwise the refusal is audited (as `action`) and the
/// answer is the [`hidden`] 404.
pub(super) fn visible_event(
    events: &Events,
    actor: &Actor,
    id: i64,
    action: &str,
) -> Result<Event, ApiError> {
    let event = events
        .store()
        .get(id)?
        .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
    if !events.actor_sees(actor, &event) {
        events.audit_denied(actor, action, Some(id), "event not shared with department");
        return Err(hidden(id));
    }
    Ok(event)
}

pub(super) async fn get_event(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    let events = state.events.clone();
    blocking(move || {
        let event = visible_event(&events, &actor, id, "read")?;
        let history = events.store().history(id)?;
        // Read after the history: rows are only appended, so these cover every row listed.
        let history_ids = events.store().history_ids(id)?;
        let attachments = events.store().attachments(id)?;
        Ok(Json(EventDetail::new(
            &event,
            history,
            &history_ids,
            &attachments,
        ))
        .into_response())
    })
    .await
}

pub(super) async fn transition(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    let body: TransitionBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let text = |k: &str, v: Option<String>, max: usize| match v {
        Some(s) if s.len() > max => Err(ApiError::bad_request(format!(
            "field `{k}`: a string of at most {max} bytes"
        ))),
        v => Ok(v),
    };
    let action = Action::from_name(&body.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "field `action`: {:?} is not one of acknowledge, dispatch, start, resolve, close, reopen",
            body.action
        ))
    })?;
    let mut attachment_ids = body.attachments.unwrap_or_default();
    attachment_ids.sort_unstable();
    attachment_ids.dedup();
    if attachment_ids.len() > TRANSITION_ATTACHMENTS_MAX {
        return Err(ApiError::bad_request(format!(
            "field `attachments`: at most {TRANSITION_ATTACHMENTS_MAX} ids"
        )));
    }
    let req = TransitionRequest {
        action,
        department: text("department", body.department, 64)?,
        note: text("note", body.note, 4096)?,
    };
    let events = state.events.clone();
    blocking(move || {
        visible_event(&events, &actor, id, action.name())?;
        if actor.scope < Scope::Write {
            events.audit_denied(&actor, action.name(), Some(id), "read-only token");
            return Err(ApiError::forbidden(
                "a read-only token cannot act on events",
            ));
        }
        // A dispatch names who receives the event: only a registered department, or the
        // event would be shared with a name that any later token could be issued for.
        if action == Action::Dispatch {
            if let Some(d) = req.department.as_deref() {
                if !events.directory().department_exists(d) {
                    events.audit_denied(
                        &actor,
                        action.name(),
                        Some(id),
                        "dispatch to an unknown department",
                    );
                    return Err(ApiError::unprocessable(
                        "unknown_department",
                        "department",
                        format!("{d:?} is not a registered department"),
                    ));
                }
            }
        }
        let change = events.transition_with(id, &actor, &req, &attachment_ids, now_ns())?;
        Ok(Json(EventJson::from(&change.event)).into_response())
    })
    .await
}
