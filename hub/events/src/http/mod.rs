//! The HTTP routes the hub nests under `/api/v1`: events, transitions, the SSE stream, webhook
//! subscriptions, the evaluation report, the photos on events (`attachments.rs`) and announced
//! edge outages (`outages.rs`).
//! Authentication is the hub's ([`Authorizer`]); access per event is the sharing rules'.
//! Errors are `{"error":{"code","message"}}`.
mod attachments;
mod audit;
pub mod bodies;
mod error;
mod events;
pub mod outages;
mod report;
mod stream;
mod subscriptions;

pub use error::ApiError;

use audit::audit_log;
use events::{get_event, list_events, transition};
use report::{evaluation, evaluation_csv, evaluation_xlsx};
use stream::stream;
use subscriptions::{
    create_subscription, delete_subscription, get_subscription, list_deliveries, list_subscriptions,
};

use crate::model::{parse_ts_ns, Actor};
use crate::Events;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use std::collections::HashMap;
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
    // Uploads get room for one photo of `bytes_max` and its multipart framing.
    let upload_bytes_max = usize::try_from(events.attachment_settings().bytes_max)
        .unwrap_or(usize::MAX)
        .saturating_add(attachments::MULTIPART_OVERHEAD_BYTES);
    Router::new()
        .route("/events", get(list_events))
        .route("/events/stream", get(stream))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/transitions", post(transition))
        .route(
            "/events/{id}/attachments",
            get(attachments::list)
                .post(attachments::upload)
                .layer(DefaultBodyLimit::max(upload_bytes_max)),
        )
        .route(
            "/events/{id}/attachments/{att}",
            get(attachments::get_one).delete(attachments::delete),
        )
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
        .route("/reports/evaluation.csv", get(evaluation_csv))
        .route("/reports/evaluation.xlsx", get(evaluation_xlsx))
        .route(
            "/edges/{id}/outages",
            get(outages::list).post(outages::announce),
        )
        .route("/edges/{id}/outages/{oid}", delete(outages::delete))
        .route("/audit", get(audit_log))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(ApiState { events, auth })
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
