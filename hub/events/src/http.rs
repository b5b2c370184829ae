//! The HTTP routes the hub nests under `/api/v1`: events, transitions, the SSE stream, webhook
//! subscriptions and the evaluation report. Authentication is the hub's ([`Authorizer`]);
//! access per event is the sharing rules'. Errors are `{"error":{"code","message"}}`.

use crate::lifecycle::Action;
use crate::model::{now_ns, parse_ts_ns, rfc3339, Actor, Change, Scope, Status};
use crate::store::{ListQuery, StoreError, TransitionRequest};
use crate::Events;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde_json::{json, Value as Json_};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

/// Largest request body accepted (transitions, subscriptions).
const BODY_BYTES_MAX: usize = 64 * 1024;
/// Default and largest page of `GET events`.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;
/// Changes read per SSE round.
const SSE_PAGE: usize = 200;
/// Longest bearer token looked at.
const TOKEN_BYTES_MAX: usize = 512;

/// Resolves a bearer token to an actor; the hub implements it over its token store.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, bearer: &str) -> Option<Actor>;
}

#[derive(Clone)]
struct ApiState {
    events: Events,
    auth: Arc<dyn Authorizer>,
}

/// The events API. Nest it: `Router::new().nest("/api/v1", wangge_events::router(events, auth))`.
pub fn router(events: Events, auth: Arc<dyn Authorizer>) -> Router {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/stream", get(stream))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/transitions", post(transition))
        .route(
            "/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .route("/subscriptions/{id}/deliveries", get(list_deliveries))
        .route("/reports/evaluation", get(evaluation))
        .route("/audit", get(audit_log))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(ApiState { events, auth })
}

/// An API error with its JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allowed: Option<Vec<&'static str>>,
    /// The request field at fault, as the hub's own errors name it.
    field: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allowed: None,
            field: None,
        }
    }
    /// 422: well-formed, but the value is refused (a forbidden webhook target, an unknown
    /// department), naming the field.
    fn unprocessable(
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                format!("field `{field}`: {}", message.into()),
            )
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(a) = self.allowed {
            err["allowed"] = json!(a);
        }
        if let Some(f) = self.field {
            err["field"] = json!(f);
        }
        (self.status, Json(json!({ "error": err }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!("event {id} not found")),
            StoreError::InvalidTransition { ref allowed, .. } => ApiError {
                status: StatusCode::CONFLICT,
                code: "invalid_transition",
                message: e.to_string(),
                allowed: Some(allowed.clone()),
                field: None,
            },
            StoreError::MissingDepartment => {
                ApiError::bad_request("field `department`: dispatch needs a department")
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            other => {
                tracing::error!(error = %other, "events store");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "events store error",
                )
            }
        }
    }
}

fn actor(state: &ApiState, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer TOKEN header"))?
        .to_str()
        .map_err(|_| unauthorized("Authorization header is not ASCII"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= TOKEN_BYTES_MAX)
        .ok_or_else(|| unauthorized("Authorization must be `Bearer TOKEN`"))?;
    state
        .auth
        .authorize(token)
        .ok_or_else(|| unauthorized("invalid token"))
}

/// Runs store work off the async threads (SQLite calls block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("worker failed: {e}"),
        )
    })?
}

fn parse_id(s: &str, what: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("path `{what}`: {s:?} is not an integer id")))
}

fn param_ts(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    q.get(name)
        .map(|v| parse_ts_ns(v).map_err(|m| ApiError::bad_request(format!("query `{name}`: {m}"))))
        .transpose()
}

async fn list_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Json_>, ApiError> {
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
    Ok(Json(json!({ "items": items, "next": next })))
}

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
) -> Result<(Vec<Json_>, Option<String>), ApiError> {
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
        for e in &rows {
            if sees(e) {
                if items.len() == limit {
                    more = true;
                    break 'scan;
                }
                items.push(e.to_json());
                last_id = Some(e.id);
            }
        }
        match rows.last() {
            Some(last) if rows.len() == SCAN_PAGE => before = Some(last.id),
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

async fn get_event(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    let events = state.events.clone();
    blocking(move || {
        let event = events
            .store()
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
        if !events.actor_sees(&actor, &event) {
            events.audit_denied(&actor, "read", Some(id), "event not shared with department");
            return Err(hidden(id));
        }
        let mut body = event.to_json();
        body["history"] = json!(events.store().history(id)?);
        Ok(Json(body))
    })
    .await
}

async fn transition(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let id = parse_id(&id, "id")?;
    let v: Json_ = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body: not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad_request("body: expected an object {\"action\",\"department\"?,\"note\"?}")
    })?;
    for k in obj.keys() {
        if !["action", "department", "note"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("field `{k}`: unknown")));
        }
    }
    let text = |k: &str, max: usize| -> Result<Option<String>, ApiError> {
        match obj.get(k) {
            None | Some(Json_::Null) => Ok(None),
            Some(Json_::String(s)) if s.len() <= max => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!(
                "field `{k}`: a string of at most {max} bytes"
            ))),
        }
    };
    let action_name =
        text("action", 32)?.ok_or_else(|| ApiError::bad_request("field `action`: required"))?;
    let action = Action::from_name(&action_name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "field `action`: {action_name:?} is not one of acknowledge, dispatch, start, resolve, close, reopen"
        ))
    })?;
    let req = TransitionRequest {
        action,
        department: text("department", 64)?,
        note: text("note", 4096)?,
    };
    let events = state.events.clone();
    blocking(move || {
        let event = events
            .store()
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
        if !events.actor_sees(&actor, &event) {
            events.audit_denied(
                &actor,
                action.name(),
                Some(id),
                "event not shared with department",
            );
            return Err(hidden(id));
        }
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
        let change = events.transition(id, &actor, &req, now_ns())?;
        Ok(Json(change.event.to_json()))
    })
    .await
}

/// Where a stream stands: the last cursor read and the visible changes not yet sent.
struct StreamState {
    events: Events,
    actor: Actor,
    cursor: i64,
    pending: VecDeque<Change>,
    feed: tokio::sync::watch::Receiver<i64>,
}

async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let actor = actor(&state, &headers)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("last_event_id").cloned());
    let cursor = match resume {
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("Last-Event-ID: {s:?} is not a cursor")))?,
        // A new consumer starts with what happens from now on.
        None => state.events.store().last_cursor()?,
    };
    let st = StreamState {
        feed: state.events.subscribe(),
        events: state.events.clone(),
        actor,
        cursor,
        pending: VecDeque::new(),
    };
    let s = futures::stream::unfold(st, |mut s| async move {
        loop {
            if let Some(ch) = s.pending.pop_front() {
                let ev = SseEvent::default()
                    .id(ch.cursor.to_string())
                    .event("event")
                    .data(ch.body);
                return Some((Ok(ev), s));
            }
            s.feed.borrow_and_update();
            let (events, actor, cursor) = (s.events.clone(), s.actor.clone(), s.cursor);
            let page = tokio::task::spawn_blocking(move || {
                events
                    .store()
                    .changes_after(cursor, SSE_PAGE)
                    .map(|changes| {
                        let last = changes.last().map(|c| c.cursor);
                        let visible: Vec<Change> = changes
                            .into_iter()
                            .filter(|c| events.actor_sees(&actor, &c.event))
                            .collect();
                        (last, visible)
                    })
            })
            .await;
            match page {
                Ok(Ok((Some(last), visible))) => {
                    s.cursor = last;
                    s.pending.extend(visible);
                    continue;
                }
                Ok(Ok((None, _))) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "sse: reading the outbox failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "sse: worker failed");
                    return None;
                }
            }
            if s.feed.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

fn subscription_json(s: &crate::store::Subscription, with_secret: bool) -> Json_ {
    let mut v = json!({
        "id": s.id,
        "url": s.url,
        "department": s.department,
        "event_types": s.event_types,
        "created_at": rfc3339(s.created_at_ns),
    });
    if with_secret {
        v["secret"] = json!(s.secret);
    }
    v
}

fn may_manage(actor: &Actor, s: &crate::store::Subscription) -> bool {
    actor.scope == Scope::Admin || (actor.department.is_some() && actor.department == s.department)
}

async fn list_subscriptions(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let items: Vec<Json_> = state
        .events
        .store()
        .subscriptions()?
        .iter()
        .filter(|s| may_manage(&actor, s))
        .map(|s| subscription_json(s, false))
        .collect();
    Ok(Json(json!({ "items": items, "next": null })))
}

async fn create_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let actor = actor(&state, &headers)?;
    if actor.scope < Scope::Write {
        state
            .events
            .audit_denied(&actor, "subscribe", None, "read-only token");
        return Err(ApiError::forbidden(
            "a read-only token cannot create subscriptions",
        ));
    }
    let v: Json_ = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body: not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body: expected {\"url\",\"secret\"?,\"event_types\"?,\"department\"?}",
        )
    })?;
    for k in obj.keys() {
        if !["url", "secret", "event_types", "department"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("field `{k}`: unknown")));
        }
    }
    let url = obj
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048)
        .ok_or_else(|| {
            ApiError::bad_request("field `url`: required, an http(s) URL of at most 2048 bytes")
        })?;
    let secret = match obj.get("secret") {
        None | Some(Json_::Null) => hex::encode(rand::random::<[u8; 32]>()),
        Some(Json_::String(s)) if (16..=256).contains(&s.len()) => s.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `secret`: a string of 16 to 256 bytes",
            ))
        }
    };
    let event_types: Vec<String> = match obj.get("event_types") {
        None | Some(Json_::Null) => Vec::new(),
        Some(Json_::Array(a)) if a.len() <= 64 => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("field `event_types`: strings"))?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `event_types`: an array of at most 64 strings",
            ))
        }
    };
    // A department's subscription receives what the department sees; only admin may choose.
    let department = match (&actor.scope, obj.get("department").and_then(|d| d.as_str())) {
        (Scope::Admin, d) => d.map(str::to_string).or_else(|| actor.department.clone()),
        (_, Some(d)) if Some(d) != actor.department.as_deref() => {
            state.events.audit_denied(
                &actor,
                "subscribe",
                None,
                "subscription for another department",
            );
            return Err(ApiError::forbidden(
                "you can only subscribe for your own department",
            ));
        }
        _ => actor.department.clone(),
    };
    if department.is_none() && actor.scope != Scope::Admin {
        return Err(ApiError::forbidden(
            "a token without a department cannot subscribe",
        ));
    }
    // The SSRF guard, last: only an authorised caller makes the hub resolve a name.
    let timeout = std::time::Duration::from_millis(state.events.webhook_config().timeout_ms);
    if let Err(refused) = state.events.egress().check_url(url, timeout).await {
        state.events.audit_denied(
            &actor,
            "subscribe",
            None,
            &format!("webhook url refused: {refused}"),
        );
        return Err(ApiError::unprocessable(
            "refused_url",
            "url",
            refused.to_string(),
        ));
    }
    let sub = state.events.store().create_subscription(
        url,
        &secret,
        department.as_deref(),
        &event_types,
        now_ns(),
    )?;
    Ok((StatusCode::CREATED, Json(subscription_json(&sub, true))))
}

async fn find_subscription(
    state: &ApiState,
    actor: &Actor,
    id: &str,
) -> Result<crate::store::Subscription, ApiError> {
    let id = parse_id(id, "id")?;
    let sub = state
        .events
        .store()
        .subscription(id)?
        .ok_or_else(|| ApiError::not_found(format!("subscription {id} not found")))?;
    if !may_manage(actor, &sub) {
        state.events.audit_denied(
            actor,
            "subscription",
            None,
            "subscription of another department",
        );
        return Err(ApiError::forbidden(format!(
            "subscription {id} belongs to another department"
        )));
    }
    Ok(sub)
}

async fn get_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    Ok(Json(subscription_json(&sub, false)))
}

async fn delete_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    if actor.scope < Scope::Write {
        return Err(ApiError::forbidden(
            "a read-only token cannot delete subscriptions",
        ));
    }
    state.events.store().delete_subscription(sub.id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_deliveries(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    let items: Vec<Json_> = state
        .events
        .store()
        .deliveries(sub.id, PAGE_MAX)?
        .into_iter()
        .map(|(d, attempts)| {
            json!({
                "id": d.id,
                "event_id": d.event_id,
                "version": d.version,
                "cursor": d.cursor,
                "status": d.status,
                "attempts": d.attempts,
                "next_attempt": rfc3339(d.next_attempt_ns),
                "last_status": d.last_status,
                "last_error": d.last_error.as_deref().map(crate::delivery::error_class::shown),
                "delivered_at": d.delivered_at_ns.map(rfc3339),
                "history": attempts.iter().map(|a| json!({
                    "delivery": a.delivery_uid,
                    "at": rfc3339(a.at_ns),
                    "http_status": a.http_status,
                    "error": a.error.as_deref().map(crate::delivery::error_class::shown),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next": null })))
}

async fn evaluation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let now = now_ns();
    let to = param_ts(&q, "to")?.unwrap_or(now);
    let from = param_ts(&q, "from")?.unwrap_or(to - 30 * 24 * 3600 * 1_000_000_000);
    if from >= to {
        return Err(ApiError::bad_request("query `from`: must be before `to`"));
    }
    let only =
        if actor.scope == Scope::Admin {
            None
        } else {
            Some(actor.department.clone().ok_or_else(|| {
                ApiError::forbidden("a token without a department sees no report")
            })?)
        };
    // The report scans every event of the range: off the async workers.
    let events = state.events.clone();
    let report = blocking(move || {
        Ok(crate::report::evaluation(
            &events,
            from,
            to,
            now,
            only.as_deref(),
        )?)
    })
    .await?;
    Ok(Json(report))
}

async fn audit_log(
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
