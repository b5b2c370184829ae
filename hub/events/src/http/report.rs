//! `GET /reports/evaluation` (JSON), `/reports/evaluation.csv?table=…` (one table) and
//! `/reports/evaluation.xlsx` (every table, one sheet each): the evaluation report (综合评价).
//! All three see the same: an admin everything, a department token its own department. The
//! JSON is paged (`limit` rows per table from `offset`, `table` for one table, `totals` with
//! every table's row count); the downloads hold every row.

use super::{actor, blocking, param_ts, ApiError, ApiState};
use crate::model::{now_ns, Scope};
use crate::report::{Page, Paging, Report, ROWS_DEFAULT, ROWS_MAX, TABLES};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

const DAY_NS: i64 = 24 * 3600 * 1_000_000_000;
/// The `Content-Type` of the XLSX download.
const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The report the query and the token ask for, built off the async workers (it scans every
/// event of the range and every sensor's counts).
async fn build(
    state: &ApiState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Report, ApiError> {
    let actor = actor(state, headers)?;
    let now = now_ns();
    let to = param_ts(q, "to")?.unwrap_or(now);
    let from = param_ts(q, "from")?.unwrap_or(to - 30 * DAY_NS);
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
    let events = state.events.clone();
    blocking(move || {
        Ok(crate::report::evaluation(
            &events,
            from,
            to,
            now,
            only.as_deref(),
        )?)
    })
    .await
}

pub(super) async fn evaluation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let paging = paging(&q)?;
    let (offset, limit) = (paging.offset, paging.limit);
    let table = paging.table.map(str::to_string);
    let report = build(&state, &headers, &q).await?;
    // Up to tens of MB at district scale: serialized off the async workers too.
    let body = blocking(move || {
        let paging = Paging {
            offset,
            limit,
            table: table.as_deref(),
        };
        let page = Page {
            report: &report,
            paging,
        };
        serde_json::to_vec(&page).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot write the report: {e}"),
            )
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `table` (one of [`TABLES`]) and a query's `offset` and `limit` (1 to [`ROWS_MAX`]).
fn table_param(q: &HashMap<String, String>) -> Result<Option<&str>, ApiError> {
    match q.get("table").map(String::as_str) {
        Some(name) if !TABLES.contains(&name) => Err(ApiError::bad_request(format!(
            "query `table`: unknown table {name:?}; one of {}",
            TABLES.join(", ")
        ))),
        t => Ok(t),
    }
}

fn paging(q: &HashMap<String, String>) -> Result<Paging<'_>, ApiError> {
    let number = |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| {
        let Some(v) = q.get(name) else {
            return Ok(default);
        };
        v.parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query `{name}`: {v:?} is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            })
    };
    Ok(Paging {
        offset: number("offset", 0, 0..=usize::MAX)?,
        limit: number("limit", ROWS_DEFAULT, 1..=ROWS_MAX)?,
        table: table_param(q)?,
    })
}

/// The file name of a download: `evaluation-<from date>-<to date>.<ext>`.
fn file_name(r: &Report, ext: &str) -> String {
    let day = |ns: i64| {
        crate::model::rfc3339(ns)
            .get(..10)
            .unwrap_or("")
            .to_string()
    };
    format!("evaluation-{}-{}.{ext}", day(r.from_ns), day(r.to_ns))
}

pub(super) async fn evaluation_csv(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = table_param(&q)?.unwrap_or("components");
    let report = build(&state, &headers, &q).await?;
    let file = file_name(&report, &format!("{name}.csv"));
    let name = name.to_string();
    let body =
        blocking(move || Ok(report.table(&name).map(|t| t.to_csv()).unwrap_or_default())).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

pub(super) async fn evaluation_xlsx(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let report = build(&state, &headers, &q).await?;
    let file = file_name(&report, "xlsx");
    let body = blocking(move || {
        crate::report::to_xlsx(&report.tables).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot write the workbook: {e}"),
            )
        })
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, XLSX_TYPE.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}
