//! The technician's window into a running agent, on a local port: `/health`, Prometheus
//! `/metrics`, `/buffer` (backlog, drain rate, ETA) and `/tail` (live normalized readings
//! as JSON lines, `?sensor=ID` to filter) used by `edge tail`.

use crate::ingest::Ingest;
use crate::uplink::UplinkShared;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct ApiState {
    pub ingest: Arc<Ingest>,
    pub uplink: Arc<UplinkShared>,
}

/// What `/buffer` answers and `edge buffer` prints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BufferReport {
    pub epoch: u64,
    pub backlog_readings: u64,
    pub urgent_backlog_readings: u64,
    pub backlog_bytes: u64,
    pub inflight_readings: u64,
    pub oldest_unacked_ns: Option<i64>,
    pub drain_rate_per_s: f64,
    pub ingest_rate_per_s: f64,
    /// Seconds to empty the backlog at the current net drain rate; `None` if not draining.
    pub eta_s: Option<f64>,
    pub evicted_readings: u64,
    /// Readings evicted from the disk while their batch was in flight (a gap only if the edge
    /// restarts before that batch's ack).
    pub evicted_in_flight_readings: u64,
    pub recovery_records_dropped: u64,
    /// Records unreadable while running (damage after recovery), skipped.
    pub unreadable_skipped: u64,
    pub uplink_connected: bool,
}

pub fn buffer_report(s: &ApiState) -> BufferReport {
    let (stats, peek) = match s.ingest.buffer.lock() {
        Ok(mut b) => (b.stats(), b.peek_ts()),
        Err(_) => Default::default(),
    };
    let m = &s.ingest.metrics;
    let inflight_oldest = s.uplink.oldest_unacked_ns.load(Relaxed);
    let oldest = match (inflight_oldest, peek) {
        (0, p) => p,
        (a, Some(b)) => Some(a.min(b)),
        (a, None) => Some(a),
    };
    let drain = m.drain_rate_milli.load(Relaxed) as f64 / 1000.0;
    let ingest = m.ingest_rate_milli.load(Relaxed) as f64 / 1000.0;
    let net = drain - ingest;
    BufferReport {
        epoch: stats.epoch,
        backlog_readings: stats.records_unacked,
        urgent_backlog_readings: stats.urgent_unacked,
        backlog_bytes: stats.bytes,
        inflight_readings: s.uplink.inflight_readings.load(Relaxed),
        oldest_unacked_ns: if stats.records_unacked == 0 {
            None
        } else {
            oldest
        },
        drain_rate_per_s: drain,
        ingest_rate_per_s: ingest,
        eta_s: if stats.records_unacked == 0 {
            Some(0.0)
        } else if net > 0.0 {
            Some(stats.records_unacked as f64 / net)
        } else {
            None
        },
        evicted_readings: stats.evicted_records,
        evicted_in_flight_readings: stats.evicted_in_flight_records,
        recovery_records_dropped: stats.recovery_records_dropped,
        unreadable_skipped: stats.unreadable_skipped,
        uplink_connected: m.uplink_connected.load(Relaxed),
    }
}

async fn health(State(s): State<ApiState>) -> impl IntoResponse {
    let m = &s.ingest.metrics;
    let sources: Vec<_> = m
        .sources
        .lock()
        .map(|v| {
            v.iter()
                .map(|x| serde_json::json!({"name": x.name, "kind": x.kind, "up": x.up.load(Relaxed)}))
                .collect()
        })
        .unwrap_or_default();
    let b = buffer_report(&s);
    Json(serde_json::json!({
        "status": "ok",
        // `edge check` names the agent that holds the ports it cannot open (check/agent.rs).
        "pid": std::process::id(),
        "uplink_connected": b.uplink_connected,
        "backlog_readings": b.backlog_readings,
        "sources": sources,
    }))
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    let b = buffer_report(&s);
    let now = crate::ingest::now_ns();
    let age_s = b
        .oldest_unacked_ns
        .map(|t| ((now - t) as f64 / 1e9).max(0.0))
        .unwrap_or(0.0);
    let extra = [
        (
            "edge_buffer_bytes",
            "bytes of buffer segments on disk",
            b.backlog_bytes as f64,
        ),
        (
            "edge_buffer_records",
            "readings not yet acked by the hub",
            b.backlog_readings as f64,
        ),
        (
            "edge_buffer_urgent_records",
            "urgent readings not yet acked",
            b.urgent_backlog_readings as f64,
        ),
        (
            "edge_buffer_evicted_total",
            "readings evicted because the buffer was full",
            b.evicted_readings as f64,
        ),
        (
            "edge_buffer_evicted_in_flight_total",
            "readings evicted while their batch awaited the hub's ack (a gap only if the edge restarts first)",
            b.evicted_in_flight_readings as f64,
        ),
        (
            "edge_buffer_recovery_dropped_total",
            "torn records dropped at start-up",
            b.recovery_records_dropped as f64,
        ),
        (
            "edge_buffer_unreadable_skipped_total",
            "records unreadable while running (damage after recovery), skipped",
            b.unreadable_skipped as f64,
        ),
        (
            "edge_oldest_unacked_age_seconds",
            "age of the oldest reading not yet acked",
            age_s,
        ),
        (
            "edge_inflight_readings",
            "readings in batches awaiting the hub's ack",
            b.inflight_readings as f64,
        ),
        (
            "edge_drain_rate_per_second",
            "readings acked per second",
            b.drain_rate_per_s,
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.ingest.metrics.render(&extra),
    )
}

async fn buffer(State(s): State<ApiState>) -> impl IntoResponse {
    Json(buffer_report(&s))
}

async fn tail(State(s): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let rx = s.ingest.tail.subscribe();
    let sensor = q.get("sensor").cloned();
    let stream = futures::stream::unfold((rx, sensor), |(mut rx, sensor)| async move {
        loop {
            match rx.recv().await {
                Ok(r) => {
                    if sensor.as_deref().is_some_and(|s| s != r.sensor.as_str()) {
                        continue;
                    }
                    let mut line = serde_json::to_vec(&*r).unwrap_or_default();
                    line.push(b'\n');
                    return Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from(line)),
                        (rx, sensor),
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let line = format!("{{\"lagged\":{n}}}\n");
                    return Some((Ok(bytes::Bytes::from(line)), (rx, sensor)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/buffer", get(buffer))
        .route("/tail", get(tail))
        .with_state(state)
}

/// Samples acked/ingested counters once a second into EWMA rates for `/buffer`.
pub async fn rate_sampler(ingest: Arc<Ingest>) {
    let m = ingest.metrics.clone();
    let mut last_out = m.readings_out.load(Relaxed);
    let mut last_in = m.readings_in();
    let (mut drain, mut inr) = (0.0f64, 0.0f64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let out = m.readings_out.load(Relaxed);
        let inn = m.readings_in();
        drain = 0.7 * drain + 0.3 * (out - last_out) as f64;
        inr = 0.7 * inr + 0.3 * (inn - last_in) as f64;
        last_out = out;
        last_in = inn;
        m.drain_rate_milli.store((drain * 1000.0) as u64, Relaxed);
        m.ingest_rate_milli.store((inr * 1000.0) as u64, Relaxed);
    }
}
