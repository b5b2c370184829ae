//! The evaluation report (`GET /api/v1/reports/evaluation`, and its `.csv` and `.xlsx`
//! exports) scans every event of its range, so the range is bounded: `to - from` past
//! `http.report_range_max_days` is a 400 naming `from`.
//! Same defaults as the handler: `to` = now, `from` = `to` − 30 days.

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The route this bounds.
pub const REPORT_PATH: &str = "/api/v1/reports/evaluation";
/// Its exports, bounded the same.
pub const REPORT_EXPORT_PATHS: [&str; 2] = [
    "/api/v1/reports/evaluation.csv",
    "/api/v1/reports/evaluation.xlsx",
];
/// The handler's default range when `from` is omitted.
const DEFAULT_RANGE_DAYS: i64 = 30;
const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Middleware over the whole app; `State` is the bound in days.
pub async fn bound_report_range(State(max_days): State<u32>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path != REPORT_PATH && !REPORT_EXPORT_PATHS.contains(&path) {
        return next.run(req).await;
    }
    let Ok(axum::extract::Query(query)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
    else {
        return next.run(req).await; // the handler answers a malformed query
    };
    let mut from = None;
    let mut to = None;
    for (k, v) in query {
        let slot = match k.as_str() {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        match wangge_events::model::parse_ts_ns(&v) {
            Ok(ts) => *slot = Some(ts),
            // The handler names the bad field itself.
            Err(_) => return next.run(req).await,
        }
    }
    let to = to.unwrap_or_else(wangge_events::model::now_ns);
    let from = from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_DAYS * DAY_NS));
    let max_ns = i64::from(max_days).saturating_mul(DAY_NS);
    if to.saturating_sub(from) > max_ns {
        return ApiError::field(
            "from",
            format!(
                "the range from `from` to `to` is longer than http.report_range_max_days \
                 ({max_days} days); narrow it"
            ),
        )
        .into_response();
    }
    next.run(req).await
}
