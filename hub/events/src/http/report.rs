//! `GET /reports/evaluation`: the evaluation report (综合评价).

use super::{actor, blocking, param_ts, ApiError, ApiState};
use crate::model::{now_ns, Scope};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value as Json_;
use std::collections::HashMap;

pub(super) async fn evaluation(
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
