//! `GET components/{id}/readings`: a component's series of one quantity, raw or downsampled.
//!
//! The registry maps the component to its sensors; the time-series store answers per sensor
//! and the series are merged by time. A range longer than `raw_range_max_ms` is downsampled
//! (min/max/mean per step) even without `step`, so a chart never pulls millions of points.

use super::error::{rejection, ApiError};
use super::time::{parse_duration, parse_ts_ns};
use super::AppState;
use crate::registry::format_ts;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Default range when `from` is omitted: the last 24 h.
const DEFAULT_RANGE_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Target bucket count when downsampling without an explicit `step`.
const AUTO_BUCKETS: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Canonical quantity name, e.g. `tilt`, `water_level`.
    pub quantity: Option<String>,
    /// Start (inclusive): RFC 3339 or Unix ms. Default: `to` − 24 h.
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or Unix ms. Default: now.
    pub to: Option<String>,
    /// Downsampling step (`30s`, `5m`, `1h` or ms): one point per step with min/max/mean.
    /// `raw`: raw points whatever the range (paged with `next`).
    pub step: Option<String>,
}

/// One point. Raw points carry the reading's quality; downsampled ones carry `quality:
/// "aggregate"`, `value` = mean, and `min`, `max`, `count`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PointOut {
    /// RFC 3339, UTC.
    pub ts: String,
    pub value: f64,
    /// good | suspect | bad | aggregate
    pub quality: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readings {
    pub points: Vec<PointOut>,
    /// The step in ms when downsampled, null for raw points.
    pub step_ms: Option<u64>,
    /// Raw points only: more points exist from this time on (RFC 3339, ns precision); ask again
    /// with `from` = `next`. Null when the range is complete.
    pub next: Option<String>,
}

/// A component's readings of one quantity over a time range.
#[utoipa::path(get, path = "/api/v1/components/{id}/readings", tag = "components",
    params(("id" = String, Path, description = "16-digit component code"), ReadingsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Readings), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub async fn component_readings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ReadingsQuery>, QueryRejection>,
) -> Result<Json<Readings>, ApiError> {
    let Query(q) = q.map_err(|e| rejection(e.status(), e.body_text()))?;
    let quantity_name = q
        .quantity
        .ok_or_else(|| ApiError::field("quantity", "required, e.g. quantity=tilt"))?;
    let quantity = protocol::Quantity::from_name(&quantity_name).map_err(|_| {
        let names: Vec<&str> = protocol::Quantity::ALL.iter().map(|q| q.name()).collect();
        ApiError::field(
            "quantity",
            format!("{quantity_name:?} is not one of {}", names.join(", ")),
        )
    })?;
    let to = match &q.to {
        Some(t) => parse_ts_ns(t).map_err(|e| ApiError::field("to", e))?,
        None => crate::registry::now_ns(),
    };
    let from = match &q.from {
        Some(t) => parse_ts_ns(t).map_err(|e| ApiError::field("from", e))?,
        None => to.saturating_sub(DEFAULT_RANGE_NS),
    };
    if from >= to {
        return Err(ApiError::field("from", "must be before `to`"));
    }
    let limits = state.limits.clone();
    let step_ns = step_for(q.step.as_deref(), to - from, &limits)?;
    let store = state.readings.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_timeseries_store",
            "this hub runs without a queryable time-series store",
        )
    })?;
    let points = state
        .with_registry(move |reg| {
            if reg.component(&id)?.is_none() {
                return Err(ApiError::not_found(format!("component {id}")));
            }
            let sensors = reg.component_sensors(&id)?;
            let mut out: Vec<(i64, PointOut)> = Vec::new();
            let ts_err = |e: crate::timeseries::TsError| {
                tracing::warn!(error = %e, "readings query failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            };
            for s in &sensors {
                match step_ns {
                    Some(step) => {
                        for b in store
                            .downsample(&s.id, quantity, from, to, step)
                            .map_err(ts_err)?
                        {
                            out.push((
                                b.ts_ns,
                                PointOut {
                                    ts: format_ts(b.ts_ns),
                                    value: b.mean,
                                    quality: "aggregate".to_string(),
                                    min: Some(b.min),
                                    max: Some(b.max),
                                    count: Some(b.count),
                                },
                            ));
                        }
                    }
                    None => {
                        for p in store
                            .points(&s.id, quantity, from, to, limits.points_max + 1)
                            .map_err(ts_err)?
                        {
                            out.push((
                                p.ts_ns,
                                PointOut {
                                    ts: format_ts(p.ts_ns),
                                    value: p.value,
                                    quality: p.quality.name().to_string(),
                                    min: None,
                                    max: None,
                                    count: None,
                                },
                            ));
                        }
                    }
                }
            }
            out.sort_by_key(|(ts, _)| *ts);
            let next = if step_ns.is_none() {
                cut_raw_page(&mut out, limits.points_max)?
            } else {
                out.truncate(limits.points_max);
                None
            };
            Ok((out.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), next))
        })
        .await?;
    let (points, next) = points;
    Ok(Json(Readings {
        points,
        step_ms: step_ns.map(|s| (s / 1_000_000) as u64),
        next,
    }))
}

/// A full page of raw points: cut at a timestamp boundary so `from = next` neither repeats nor
/// skips a point (several sensors may share a timestamp). Returns `next`, None when complete.
fn cut_raw_page(
    out: &mut Vec<(i64, PointOut)>,
    points_max: usize,
) -> Result<Option<String>, ApiError> {
    if out.len() <= points_max {
        return Ok(None);
    }
    let first_omitted = out[points_max].0;
    out.truncate(points_max);
    while out.last().is_some_and(|(ts, _)| *ts == first_omitted) {
        out.pop();
    }
    if out.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_points",
            format!("more than {points_max} points share one timestamp; narrow the range"),
        ));
    }
    Ok(Some(format_ts_ns(first_omitted)))
}

/// The bucket width: None = raw points (`step=raw`, or a range short enough for raw), else the
/// asked step, or whole seconds giving about `AUTO_BUCKETS` buckets.
fn step_for(
    step: Option<&str>,
    range: i64,
    limits: &crate::config::HttpConfig,
) -> Result<Option<i64>, ApiError> {
    Ok(match step {
        Some("raw") => None,
        Some(s) => {
            let d = parse_duration(s).map_err(|e| ApiError::field("step", e))?;
            let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            if ns < 1_000_000 {
                return Err(ApiError::field("step", "must be at least 1 ms"));
            }
            if range / ns >= limits.points_max as i64 {
                return Err(ApiError::field(
                    "step",
                    format!(
                        "gives {} points over this range, at most {} allowed",
                        range / ns,
                        limits.points_max
                    ),
                ));
            }
            Some(ns)
        }
        None if range > (limits.raw_range_max_ms as i64).saturating_mul(1_000_000) => {
            // Whole seconds, so buckets line up across requests.
            let s = ((range / AUTO_BUCKETS) + 999_999_999) / 1_000_000_000;
            let s = s.max(1);
            Some(s * 1_000_000_000)
        }
        None => None,
    })
}

/// RFC 3339 with all nine fractional digits: a cursor must not lose sub-millisecond precision.
use protocol::time::format_ns as format_ts_ns;
